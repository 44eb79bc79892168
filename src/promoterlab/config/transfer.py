"""The option strings of fine-tuning and distillation (``TrainConfig.freeze`` and
``TrainConfig.teacher_extra``), read into what they ask for; used by the config's checks and by
:mod:`promoterlab.training.transfer` and :mod:`promoterlab.training.distill`."""

from __future__ import annotations

DEFAULT_MUTATION_RATE = 0.1  # of the insert: 8 of an 80 bp insert's bases redrawn


def freeze_spec(spec: str) -> tuple[str, int] | None:
    """``("blocks", N)`` or ``("head", EPOCHS)`` of ``"blocks:N"`` (or a bare ``N``) and
    ``"head:EPOCHS"``; None for ``"none"``.

    Raises
    ------
    ValueError
        Naming the unknown kind or the bad count.
    """
    if not isinstance(spec, str):
        raise ValueError(f"freeze must be none, blocks:N or head:EPOCHS, got {spec!r}")
    kind, colon, value = (part.strip() for part in spec.strip().lower().partition(":"))
    if kind in ("", "none") and not colon:
        return None
    if kind.isdigit() and not colon:
        kind, colon, value = "blocks", ":", kind
    if kind not in ("blocks", "head") or not colon:
        raise ValueError(f"freeze: unknown setting {spec.strip()!r}; use none, blocks:N (the stem and the first "
                         "N blocks) or head:EPOCHS (only the head for the first EPOCHS epochs)")
    if not value.isdigit() or int(value) < 1:
        what = "blocks" if kind == "blocks" else "epochs"
        raise ValueError(f"freeze: {kind} takes a whole number of {what} >= 1, got {value!r}")
    return kind, int(value)


def teacher_extra_spec(spec: str) -> tuple[str, float] | None:
    """``("mutate", RATE)`` (default :data:`DEFAULT_MUTATION_RATE`) or ``("shuffle", 0.0)`` of ``"mutate[:RATE]"`` and
    ``"shuffle"``; None for ``"none"``.

    Raises
    ------
    ValueError
        Naming the unknown generator or the bad rate.
    """
    if not isinstance(spec, str):
        raise ValueError(f"teacher_extra must be none, mutate[:RATE] or shuffle, got {spec!r}")
    kind, colon, value = (part.strip() for part in spec.strip().lower().partition(":"))
    if kind in ("", "none") and not colon:
        return None
    if kind == "shuffle" and not colon:
        return kind, 0.0
    if kind != "mutate":
        raise ValueError(f"teacher_extra: unknown generator {spec.strip()!r}; use none, mutate[:RATE] or shuffle")
    try:
        rate = float(value) if colon else DEFAULT_MUTATION_RATE
    except ValueError:
        raise ValueError(f"teacher_extra: mutate takes a fraction of the insert in (0, 0.75], got {value!r}") from None
    if not 0 < rate <= 0.75:
        raise ValueError(f"teacher_extra: mutate takes a fraction of the insert in (0, 0.75], got {rate!r}")
    return kind, rate
