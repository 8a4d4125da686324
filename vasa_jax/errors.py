"""Errors a user can cause and fix, which command-line tools report in one line (exit code 2)."""


class ConfigError(ValueError):
    """A configuration that cannot work (sizes that do not fit, a schedule shorter than its warm-up, ...)."""


def dataclass_from_section(cls, section, name: str):
    """cls(**section) for a frozen config dataclass built from a ConfigDict section (lists become tuples, so
    the result stays hashable); ConfigError naming the section's unknown entries."""
    import dataclasses

    values = {k: tuple(v) if isinstance(v, list) else v for k, v in dict(section).items()}
    unknown = set(values) - {f.name for f in dataclasses.fields(cls)}
    if unknown:
        raise ConfigError(f"unknown {name} entries: {sorted(unknown)}")
    return cls(**values)
