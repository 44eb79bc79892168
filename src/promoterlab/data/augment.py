"""EvoAug: evolution-inspired augmentations of the insert (Lee et al. 2023, Genome Biology 24:105).

Random mutation, insertion, deletion, inversion, translocation and Gaussian noise, each
following the definitions of the authors' ``evoaug`` package (``evoaug/augment.py``), applied
only to each sequence's *insert window* (:func:`promoterlab.sequence.insert_windows`): the part of
the laid-out 150 bp window that came from the measured sequence, without the fixed plasmid flank
before it (see :class:`~promoterlab.sequence.Layout`) nor a fixed adapter after it.

The ``evoaug`` package itself does not fit our input: it augments whole ``(N, 4, L)`` one-hot
tensors (flank included), draws from the global random state, and lengthens every sequence by
``insert_max`` random bases, which would move the insert out of the plasmid layout that a
model is trained and used with. So the augmentations are implemented here on the uint8 codes
(:mod:`promoterlab.sequence`) of a batch, with per-row windows, a fixed length and a
``torch.Generator``:

- mutation: ``round(rate / 0.75 * W)`` positions of the window (``W`` bases) are set to a
  uniformly random base (a quarter of them silent, hence the 0.75);
- insertion: ``k ~ U{0..max}`` random bases are inserted before window offset ``i ~ U{0..W-1}``;
  to keep the length, ``k // 2`` bases are trimmed from the window's start and the rest from
  its end (the package instead pads every sequence to ``L + max``);
- deletion: ``k ~ U{0..max}`` bases from offset ``d ~ U{0..W-max}`` are deleted and the window
  is refilled with random bases, ``k // 2`` at its start and the rest at its end, as in the
  package;
- inversion: ``k ~ U{0..max}`` bases from offset ``v ~ U{0..W-max}`` are reverse-complemented;
- translocation: the window is rolled by ``k ~ U{0..max}`` positions, left or right with equal
  probability;
- noise: ``N(0, std)`` noise on the four base channels of the float input, inside the window
  (:func:`random_noise`, applied to the 6-channel batch after :func:`evoaug`).

Defaults are the authors' published usage example (``evoaug`` README): mutation 0.05,
insertion, deletion and translocation up to 20 bp, noise std 0.2, ``max_augs_per_seq=2`` with
``hard_aug=True`` (each sequence gets exactly two different augmentations, drawn at random;
``hard=False``: between one and ``max_augs``); inversion up to 20 bp as in the ``evoaug2``
documentation (the README example has none; reverse complement, also in it, is training's own
RC augmentation here). The authors' DeepSTARR script uses the same lengths without inversion
and three augmentations per sequence, then fine-tunes on the unaugmented data for 5 epochs at a 10x
lower learning rate, the step the paper prescribes after augmented training.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import torch

from promoterlab.sequence import complement_codes

# In the order they are applied to a sequence that draws several (noise acts on the float input).
AUGMENTATIONS = ("insertion", "deletion", "inversion", "translocation", "mutation", "noise")


@dataclass(frozen=True)
class EvoAugConfig:
    """EvoAug settings; an augmentation set to 0 is off.

    Parameters
    ----------
    mutation : float
        Fraction of window positions redrawn (0..0.75).
    insertion, deletion, inversion, translocation : int
        Largest length (bp) of an insertion, deletion, inversion or shift; lengths are drawn
        uniformly from 0 to this.
    noise : float
        Standard deviation of the Gaussian noise on the one-hot input.
    max_augs : int
        Augmentations per sequence (at most the number switched on).
    hard : bool
        Exactly ``max_augs`` per sequence; False: uniformly 1 to ``max_augs``.
    """

    mutation: float = 0.05
    insertion: int = 20
    deletion: int = 20
    inversion: int = 20
    translocation: int = 20
    noise: float = 0.2
    max_augs: int = 2
    hard: bool = True

    def __post_init__(self) -> None:
        for name in ("insertion", "deletion", "inversion", "translocation"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"augment: {name} must be a whole number of bp >= 0, got {value!r}")
        for name, high in (("mutation", 0.75), ("noise", math.inf)):
            value = getattr(self, name)
            number = isinstance(value, (int, float)) and not isinstance(value, bool)
            if not (number and math.isfinite(value) and 0 <= value <= high):
                bound = "between 0 and 0.75" if name == "mutation" else "a finite number >= 0"
                raise ValueError(f"augment: {name} must be {bound}, got {value!r}")
        if isinstance(self.max_augs, bool) or not isinstance(self.max_augs, int) or self.max_augs < 1:
            raise ValueError(f"augment: max_augs must be a whole number >= 1, got {self.max_augs!r}")
        if not isinstance(self.hard, bool):
            raise ValueError(f"augment: hard must be true or false, got {self.hard!r}")

    @property
    def enabled(self) -> tuple[str, ...]:
        """The augmentations switched on, in the order they are applied."""
        return tuple(name for name in AUGMENTATIONS if getattr(self, name))

    def to_spec(self) -> str:
        """The ``--augment`` string that :func:`parse_augment` reads back into this config."""
        changed = []
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if value != f.default:
                changed.append(f"{f.name}={str(value).lower() if isinstance(value, bool) else value}")
        return "evoaug" + (":" + ",".join(changed) if changed else "")


def parse_augment(spec: str) -> EvoAugConfig | None:
    """Read ``"evoaug"`` (paper defaults), ``"evoaug:mutation=0.1,noise=0,..."`` or ``"none"``.

    Raises
    ------
    ValueError
        Naming the unknown augmentation, the unknown or repeated key, or the bad value.
    """
    spec = spec.strip()
    if spec.lower() in ("", "none"):
        return None
    name, colon, settings = spec.partition(":")
    if name.strip().lower() != "evoaug":
        raise ValueError(f"augment: unknown augmentation {name.strip()!r}; use evoaug, "
                         "evoaug:KEY=VALUE,... or none")
    if colon and not settings.strip():
        raise ValueError("augment: no settings after 'evoaug:'; give KEY=VALUE pairs separated by commas")
    types = {f.name: type(f.default) for f in dataclasses.fields(EvoAugConfig)}
    values: dict[str, object] = {}
    for item in settings.split(",") if colon else []:
        key, equals, text = (part.strip() for part in item.partition("="))
        if not equals or not key or not text:
            raise ValueError(f"augment: {item.strip()!r} is not KEY=VALUE")
        if key not in types:
            raise ValueError(f"augment: unknown setting {key!r}; settings are {', '.join(types)}")
        if key in values:
            raise ValueError(f"augment: {key} given twice")
        values[key] = _convert(key, text, types[key])
    return EvoAugConfig(**values)


def _convert(key: str, text: str, kind: type) -> bool | int | float:
    """``text`` as the type of the setting's default."""
    if kind is bool:
        if text.lower() not in ("true", "false", "1", "0", "yes", "no"):
            raise ValueError(f"augment: {key} must be true or false, got {text!r}")
        return text.lower() in ("true", "1", "yes")
    try:
        return kind(text)
    except ValueError:
        raise ValueError(f"augment: {key} must be {'a whole number' if kind is int else 'a number'}, "
                         f"got {text!r}") from None


def window_mask(windows: torch.Tensor, length: int, reverse: torch.Tensor | None = None) -> torch.Tensor:
    """``(batch, length)`` True inside each row's window; mirrored for rows flagged ``reverse``
    (reverse-complemented after augmentation, as training's RC copies are)."""
    pos = torch.arange(length).expand(len(windows), length)
    if reverse is not None:
        pos = torch.where(reverse.reshape(-1, 1).bool(), length - 1 - pos, pos)
    return (pos >= windows[:, :1]) & (pos < windows[:, 1:])


def _uniform_int(high: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    """One integer uniform on ``0..high`` per element of ``high`` (``high >= 0``)."""
    draw = torch.rand(high.shape, generator=generator) * (high + 1)
    return torch.minimum(draw.floor().long(), high)


def _grid(codes: torch.Tensor, windows: torch.Tensor):
    """Per row and position: offset in the window, window width, start; and the inside mask."""
    start, width = windows[:, :1], (windows[:, 1:] - windows[:, :1]).clamp(min=0)
    offset = torch.arange(codes.shape[1]).expand(len(codes), -1) - start
    return offset, width, start, (offset >= 0) & (offset < width)


def _remap(codes: torch.Tensor, windows: torch.Tensor, source: torch.Tensor, fresh: torch.Tensor,
           complement: torch.Tensor | None, generator: torch.Generator | None) -> torch.Tensor:
    """Window position ``o`` takes the base at window offset ``source[o]`` (complemented where
    ``complement``), or a random base where ``fresh``; outside the window nothing changes."""
    offset, width, start, inside = _grid(codes, windows)
    source = torch.minimum(source.clamp(min=0), (width - 1).clamp(min=0))  # fresh positions point anywhere
    index = torch.where(inside, start + source, offset + start)
    out = codes.gather(1, index)
    if complement is not None:
        out = torch.where(complement & inside, complement_codes(out), out)
    bases = torch.randint(0, 4, codes.shape, generator=generator, dtype=codes.dtype)
    return torch.where(fresh & inside, bases, out)


def random_mutation(codes: torch.Tensor, windows: torch.Tensor, rate: float,
                    generator: torch.Generator | None = None) -> torch.Tensor:
    """Redraw ``round(rate / 0.75 * W)`` distinct window positions of each row uniformly from ACGT.

    Parameters
    ----------
    codes : torch.Tensor
        ``(batch, L)`` uint8 codes (A=0, C=1, G=2, T=3, N=4).
    windows : torch.Tensor
        ``(batch, 2)`` insert windows from :func:`~promoterlab.sequence.insert_windows`.
    rate : float
        Expected fraction of positions changed (a redrawn base is the same one in a quarter of cases).
    generator : torch.Generator, optional
        Source of randomness (the global one when omitted).

    Returns
    -------
    torch.Tensor
        New codes; positions outside the windows are unchanged.
    """
    offset, width, _, inside = _grid(codes, windows)
    count = torch.round(rate / 0.75 * width.double()).long()
    scores = torch.rand(codes.shape, generator=generator).masked_fill(~inside, 2.0)
    rank = scores.argsort(1).argsort(1)
    return _remap(codes, windows, offset, rank < count, None, generator)


def random_insertion(codes: torch.Tensor, windows: torch.Tensor, max_len: int,
                     generator: torch.Generator | None = None) -> torch.Tensor:
    """Insert ``k ~ U{0..max_len}`` random bases at window offset ``i ~ U{0..W-1}``, then trim
    ``k // 2`` bases from the window's start and ``k - k // 2`` from its end (length kept)."""
    offset, width, _, _ = _grid(codes, windows)
    length = _uniform_int(torch.full_like(width, max_len), generator)
    at = _uniform_int((width - 1).clamp(min=0), generator)
    lengthened = offset + length // 2  # offset in sequence[:at] + random(k) + sequence[at:]
    source = torch.where(lengthened < at, lengthened, lengthened - length)
    return _remap(codes, windows, source, (lengthened >= at) & (lengthened < at + length), None, generator)


def random_deletion(codes: torch.Tensor, windows: torch.Tensor, max_len: int,
                    generator: torch.Generator | None = None) -> torch.Tensor:
    """Delete ``k ~ U{0..max_len}`` bases from window offset ``d ~ U{0..W-max_len}`` and refill with
    random bases, ``k // 2`` at the window's start and ``k - k // 2`` at its end (length kept)."""
    offset, width, _, _ = _grid(codes, windows)
    length = torch.minimum(_uniform_int(torch.full_like(width, max_len), generator), width)
    at = _uniform_int((width - max_len).clamp(min=0), generator)
    head = length // 2
    kept = offset - head  # offset in sequence[:d] + sequence[d + k:]
    source = torch.where(kept < at, kept, kept + length)
    fresh = (kept < 0) | (offset >= width - (length - head))
    return _remap(codes, windows, source, fresh, None, generator)


def random_inversion(codes: torch.Tensor, windows: torch.Tensor, max_len: int,
                     generator: torch.Generator | None = None) -> torch.Tensor:
    """Reverse-complement ``k ~ U{0..max_len}`` bases from window offset ``v ~ U{0..W-max_len}``."""
    offset, width, _, _ = _grid(codes, windows)
    length = torch.minimum(_uniform_int(torch.full_like(width, max_len), generator), width)
    at = _uniform_int((width - max_len).clamp(min=0), generator)
    inverted = (offset >= at) & (offset < at + length)
    source = torch.where(inverted, 2 * at + length - 1 - offset, offset)
    return _remap(codes, windows, source, torch.zeros_like(inverted), inverted, generator)


def random_translocation(codes: torch.Tensor, windows: torch.Tensor, max_len: int,
                         generator: torch.Generator | None = None) -> torch.Tensor:
    """Roll each window by ``k ~ U{0..max_len}`` positions, right or left with equal probability
    (``torch.roll`` within the window: the window is cut in two and the pieces swapped)."""
    offset, width, _, inside = _grid(codes, windows)
    shift = _uniform_int(torch.full_like(width, max_len), generator)
    shift = torch.where(torch.rand(width.shape, generator=generator) < 0.5, -shift, shift)
    source = (offset - shift).remainder(width.clamp(min=1))
    return _remap(codes, windows, source, torch.zeros_like(inside), None, generator)


def random_noise(x: torch.Tensor, windows: torch.Tensor, std: float, generator: torch.Generator | None = None,
                 rows: torch.Tensor | None = None, reverse: torch.Tensor | None = None) -> torch.Tensor:
    """Add ``N(0, std)`` noise to the four base channels of ``x`` inside each row's window.

    Parameters
    ----------
    x : torch.Tensor
        ``(batch, C, L)`` float model input whose first four channels are the one-hot bases
        (the 6-channel input of :func:`promoterlab.sequence.model_input`).
    windows : torch.Tensor
        ``(batch, 2)`` insert windows in forward-strand coordinates.
    std : float
        Noise standard deviation.
    generator : torch.Generator, optional
        Source of randomness.
    rows : torch.Tensor, optional
        ``(batch,)`` bool: only these rows get noise (the second output of :func:`evoaug`).
    reverse : torch.Tensor, optional
        ``(batch,)`` bool: rows reverse-complemented after augmentation, whose window is mirrored.

    Returns
    -------
    torch.Tensor
        A noisy copy of ``x``.
    """
    mask = window_mask(windows, x.shape[-1], reverse)
    if rows is not None:
        mask &= rows.reshape(-1, 1).bool()
    noise = torch.randn((len(x), 4, x.shape[-1]), generator=generator, dtype=x.dtype) * std
    out = x.clone()
    out[:, :4] += noise * mask[:, None]
    return out


def sample_augmentations(batch: int, config: EvoAugConfig, generator: torch.Generator | None = None
                         ) -> torch.Tensor:
    """``(batch, len(config.enabled))`` bool: which augmentations each sequence gets, distinct and
    ``min(max_augs, enabled)`` of them per row (``hard``), else uniformly 1 to that many."""
    n = len(config.enabled)
    most = min(config.max_augs, n)
    if most == 0:
        return torch.zeros(batch, 0, dtype=torch.bool)
    count = torch.full((batch, 1), most)
    if not config.hard:
        count = 1 + _uniform_int(torch.full((batch, 1), most - 1), generator)
    rank = torch.rand(batch, n, generator=generator).argsort(1).argsort(1)
    return rank < count


_ON_CODES = {"insertion": random_insertion, "deletion": random_deletion, "inversion": random_inversion,
             "translocation": random_translocation, "mutation": random_mutation}


def evoaug(codes: torch.Tensor, windows: torch.Tensor, config: EvoAugConfig,
           generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Apply the augmentations each sequence draws (:func:`sample_augmentations`) to its insert.

    Parameters
    ----------
    codes : torch.Tensor
        ``(batch, L)`` uint8 codes, forward strand (augment before reverse-complementing).
    windows : torch.Tensor
        ``(batch, 2)`` insert windows (:func:`~promoterlab.sequence.insert_windows`).
    config : EvoAugConfig
        Which augmentations and how strong.
    generator : torch.Generator, optional
        Source of randomness; the same seed gives the same batch.

    Returns
    -------
    codes : torch.Tensor
        Augmented codes, same shape and dtype.
    noise_rows : torch.Tensor
        ``(batch,)`` bool: rows that drew noise, to pass as ``rows`` to :func:`random_noise`
        once the float input is built.
    """
    chosen = sample_augmentations(len(codes), config, generator)
    out = codes.clone()
    noise_rows = torch.zeros(len(codes), dtype=torch.bool)
    for column, name in enumerate(config.enabled):
        rows = chosen[:, column]
        if name == "noise":
            noise_rows = rows
        elif rows.any():
            out[rows] = _ON_CODES[name](out[rows], windows[rows], getattr(config, name), generator)
    return out, noise_rows
