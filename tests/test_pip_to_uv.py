"""scripts/pip_to_uv.py: uv finds packages where pip would (setup.sh installs with uv)."""
from __future__ import annotations

from conftest import load_script

pip_to_uv = load_script("scripts/pip_to_uv.py")


def test_env_beats_files_and_lists_are_kept(tmp_path):
    wheels, idx = tmp_path / "wheels", tmp_path / "simple"
    wheels.mkdir(), idx.mkdir()
    out = "\n".join([
        ":env:.index-url='https://mirror.example/simple'",
        f":env:.find-links='{wheels}'",
        "global.index-url='https://files.example/simple'",
        f"global.extra-index-url='file://{idx} https://extra.example/simple'",
        f"global.find-links='{wheels}'",
        "global.constraint='/etc/xdg/pip/constraints.txt'",
        "global.cert='/etc/ssl/certs/ca.crt'",
        "site.cert='/site/ca.crt'",
    ])
    cfg = pip_to_uv.parse(out)
    assert cfg["index-url"][-1] == "https://mirror.example/simple"   # PIP_INDEX_URL wins
    assert cfg["cert"][-1] == "/site/ca.crt"                           # the later file wins
    args = pip_to_uv.uv_args(cfg)
    assert args[:2] == ["--index-strategy", "unsafe-best-match"]
    pairs = list(zip(args[2::2], args[3::2]))
    assert pairs == [("--default-index", "https://mirror.example/simple"),
                     ("--index", f"file://{idx}"), ("--index", "https://extra.example/simple"),
                     ("--find-links", str(wheels)),                  # once, though named twice
                     ("--constraint", "/etc/xdg/pip/constraints.txt")]


def test_missing_local_sources_are_left_out(tmp_path):
    """pip warns about and skips a find-links folder or file:// index that is not there; uv would fail."""
    cfg = pip_to_uv.parse(f"global.find-links='{tmp_path / 'nope'}'\n"
                          f"global.extra-index-url='file://{tmp_path / 'gone'} https://pypi.example/simple'")
    assert pip_to_uv.uv_args(cfg) == ["--index-strategy", "unsafe-best-match", "--index", "https://pypi.example/simple"]


def test_empty_config():
    assert pip_to_uv.uv_args(pip_to_uv.parse("")) == ["--index-strategy", "unsafe-best-match"]
