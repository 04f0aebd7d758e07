import pytest

from lab.errors import RegistryError
from lab.registry import Registry


def test_register_get_and_unknown_lists_available():
    reg: Registry = Registry("chunkers")

    @reg.register("fixed")
    def fixed():
        return "f"

    reg.add("semantic", lambda: "s")
    assert reg.get("fixed") is fixed
    assert reg.names() == ["fixed", "semantic"]
    with pytest.raises(RegistryError) as err:
        reg.get("recursive")
    assert str(err.value) == "Unknown chunker 'recursive'. Available: fixed, semantic"


def test_double_registration_fails():
    reg: Registry = Registry("metrics")
    reg.add("a", 1)
    with pytest.raises(RegistryError, match="already registered"):
        reg.add("a", 2)
