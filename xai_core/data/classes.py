"""Class names: lists, files (.json / .txt) and the bundled ImageNet-1k names."""

from __future__ import annotations

import json
from pathlib import Path

from ..errors import ConfigError

#: ``classes: imagenet`` names the 1000 ImageNet-1k classes bundled with xai_core.
BUNDLED_CLASSES = {"imagenet": Path(__file__).resolve().parent.parent / "models" / "imagenet_classes.json"}


def read_classes_file(path: str | Path, what: str = "dataset.classes") -> list[str]:
    """Class names, in index order, from a file.

    ``.json``: a list of names, or a map {"0": name, …} (values may also be [id, name] pairs,
    as in Keras' ``imagenet_class_index.json``); ``.txt``: one name per line, blank lines
    ignored. Names must be unique. Bad files get a one-line :class:`ConfigError`.
    """
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"{what}: class file {str(p)!r} does not exist; expected a .json list or a .txt file "
                          "with one name per line")
    try:
        text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"{what}: class file {str(p)!r} cannot be read as UTF-8 text ({e.__class__.__name__})") from e
    if p.suffix.lower() == ".json":
        try:
            raw = json.loads(text)
        except json.JSONDecodeError as e:
            raise ConfigError(f"{what}: {str(p)!r} is not valid JSON ({e.msg}, line {e.lineno})") from e
        if isinstance(raw, dict):
            try:
                keys = sorted(raw, key=int)
            except ValueError:
                raise ConfigError(f"{what}: {str(p)!r} is a map whose keys are not class indices; expected "
                                  "a list of names or {\"0\": name, …}") from None
            if [int(k) for k in keys] != list(range(len(keys))):
                raise ConfigError(f"{what}: {str(p)!r} has indices {keys[:3]}…; expected 0 … {len(keys) - 1} without gaps")
            raw = [raw[k][-1] if isinstance(raw[k], list) and raw[k] else raw[k] for k in keys]
        if not isinstance(raw, list) or not all(isinstance(c, (str, int)) for c in raw):
            raise ConfigError(f"{what}: {str(p)!r} holds {type(raw).__name__}; expected a JSON list of class names")
        names = [str(c) for c in raw]
    elif p.suffix.lower() == ".txt":
        names = [line.strip() for line in text.splitlines() if line.strip()]
    else:
        raise ConfigError(f"{what}: class file {str(p)!r} has suffix {p.suffix!r}; expected .json or .txt")
    if not names:
        raise ConfigError(f"{what}: class file {str(p)!r} lists no class")
    seen = set()
    for c in names:
        if c in seen:
            raise ConfigError(f"{what}: class file {str(p)!r} lists {c!r} twice; expected unique names")
        seen.add(c)
    return names


def resolve_classes(classes) -> list[str] | None:
    """The ``classes`` setting as a list: None, a list of names, a file (.json/.txt) or the
    name of a bundled list (``imagenet``)."""
    if classes is None:
        return None
    if isinstance(classes, str):
        if classes in BUNDLED_CLASSES and not Path(classes).exists():
            return read_classes_file(BUNDLED_CLASSES[classes])
        return read_classes_file(classes)
    if isinstance(classes, (list, tuple)):
        names = [str(c) for c in classes]
        dup = sorted({c for c in names if names.count(c) > 1})
        if dup:
            raise ConfigError(f"dataset.classes lists {dup[0]!r} twice; expected unique names")
        return names or None
    raise ConfigError(f"dataset.classes is {type(classes).__name__}; expected a list of names, "
                      f"a .json/.txt file or one of {sorted(BUNDLED_CLASSES)}")
