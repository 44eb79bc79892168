"""Marginalisation: the mean effect of a motif inserted at each position of background sequences.

For every start position and both strands, the motif is written into every background sequence
(:func:`tangermeme.marginalize.marginalize`), and the change of the prediction is averaged over
the backgrounds. An ``N`` in the motif keeps the background's base.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import nn
from tqdm.auto import tqdm

from promoterlab.data.dataset import encode_sequences
from promoterlab.data.readers import DataError, iter_sequences
from promoterlab.files import atomic_path
from promoterlab.interpret.known_motifs import KNOWN_MOTIFS, consensus_site, known_motif
from promoterlab.interpret.plots import plot_marginalization
from promoterlab.interpret.wrapper import OneHotExpression
from promoterlab.models.fold import fold_batchnorm
from promoterlab.precision import autocast_dtype, resolve_precision
from promoterlab.runs import load_run
from promoterlab.sequence import LEFT_ADAPTER, RIGHT_ADAPTER, reverse_complement, tangermeme_one_hot

RANDOM_INSERT_LEN = 80
N_BACKGROUND = 100
MARGINALIZE_BATCH_SIZE = 256


def random_backgrounds(n: int = N_BACKGROUND, length: int = RANDOM_INSERT_LEN, seed: int = 0) -> list[str]:
    """``n`` DREAM-style constructs, ``LEFT_ADAPTER + random length-mer + RIGHT_ADAPTER``, with
    uniform random bases (seeded)."""
    rng = np.random.default_rng(seed)
    letters = np.array(list("ACGT"))
    return [LEFT_ADAPTER + "".join(letters[rng.integers(0, 4, length)]) + RIGHT_ADAPTER for _ in range(n)]


def marginalize_positions(model: nn.Module, X: torch.Tensor, motif: str, positions: range,
                          batch_size: int = MARGINALIZE_BATCH_SIZE, precision: str = "32", device: str = "cpu",
                          progress: bool = False) -> pd.DataFrame:
    """Mean and spread of the prediction change when ``motif`` is inserted at each position.

    Parameters
    ----------
    model : nn.Module
        ``(batch, 4, L)`` one-hot -> ``(batch, 1)``
        (:class:`~promoterlab.interpret.wrapper.OneHotExpression`).
    X : torch.Tensor
        ``(n, 4, L)`` one-hot backgrounds (N = zeros).
    motif : str
        Bases (A, C, G, T; N keeps the background); inserted as given (strand ``+``) and as its
        reverse complement (strand ``-``).
    positions : range
        Window positions at which the motif starts; it must fit inside the window.
    batch_size, precision, device
        Forward passes (``precision`` resolved: ``"32"``, ``"bf16"`` or ``"16"``).
    progress : bool
        Show a progress bar.

    Returns
    -------
    pandas.DataFrame
        ``position`` (window start), ``strand``, ``mean`` and ``sd`` of the change over the
        backgrounds, ``n``.
    """
    from tangermeme.ersatz import substitute
    from tangermeme.predict import predict

    motif = motif.upper()
    if not motif or set(motif) - set("ACGTN"):
        raise ValueError(f"motif {motif!r} must be bases A, C, G, T or N")
    if positions.start < 0 or positions.stop + len(motif) - 1 > X.shape[-1]:
        raise ValueError(f"positions {positions.start}..{positions.stop - 1} do not fit a {len(motif)} bp motif "
                         f"into a {X.shape[-1]} bp window")

    def expression(inputs: torch.Tensor) -> torch.Tensor:
        return predict(model, inputs, batch_size=batch_size, device=device,
                       dtype=autocast_dtype(resolve_precision(precision, device)))[:, 0].float()

    # The backgrounds are predicted once, and the inserts of several positions share forward passes:
    # one tangermeme.marginalize call per position predicted the backgrounds again each time, in
    # batches of as many sequences as there are backgrounds (with 2 of them, a full-width LegNet
    # took 3x as long, a width-1/16 one 9x).
    before = expression(X)
    sites = [(position, strand, site) for strand, site in (("+", motif), ("-", reverse_complement(motif)))
             for position in positions]
    per_pass = max(1, (8 * batch_size) // len(X))  # positions whose inserts are predicted together
    rows = []
    bar = tqdm(total=len(sites), disable=not progress, desc="marginalize", unit="position")
    for first in range(0, len(sites), per_pass):
        group = sites[first:first + per_pass]
        after = expression(torch.cat([substitute(X, site, start=position) for position, _, site in group]))
        for (position, strand, _), change in zip(group, (after.view(len(group), len(X)) - before).numpy()):
            rows.append((position, strand, float(change.mean()), float(change.std(ddof=1)) if len(change) > 1
                         else 0.0, len(change)))
        bar.update(len(group))
    bar.close()
    return pd.DataFrame(rows, columns=["position", "strand", "mean", "sd", "n"])


def motif_bases(text: str) -> str:
    """The bases to insert for ``text``: a known motif's name (its consensus, each degenerate
    letter as the first base it allows, see
    :func:`~promoterlab.interpret.known_motifs.consensus_site`) or a string of A, C, G, T, N.

    Raises
    ------
    ValueError
        For text that is neither.
    """
    try:
        return consensus_site(known_motif(text).consensus)
    except KeyError:
        pass
    if text and not set(text.upper()) - set("ACGTN"):
        return text.upper()
    raise ValueError(f"motif {text!r} is neither a known motif ({', '.join(m.name for m in KNOWN_MOTIFS)}) "
                     "nor bases A, C, G, T, N")


def marginalize_run(run_dir: str | Path, motif: str, out_dir: str | Path, background: str | Path | None = None,
                    n_background: int = N_BACKGROUND, seed: int = 0, seq_col: str | None = None,
                    id_col: str | None = None, precision: str = "auto", device: str = "cpu", progress: bool = False
                    ) -> pd.DataFrame:
    """Insert a motif at every position of background sequences with a trained run.

    The backgrounds are the sequences of the file ``background`` (all with inserts of one
    length; the motif goes anywhere in the insert) or ``n_background`` random DREAM-style
    constructs (:func:`random_backgrounds`; the motif goes anywhere in the random 80-mer).
    Writes ``marginalize.tsv`` (``position``, 1-based motif start on the insert, ``strand``,
    ``mean``, ``sd``, ``n``) and ``marginalize.png`` to ``out_dir``, after all is computed.
    """
    bases = motif_bases(motif)
    precision = resolve_precision(precision, device)
    model, config = load_run(run_dir, device)
    layout = config.data.layout
    if background is None:
        seqs, lines = random_backgrounds(n_background, seed=seed), None
        usable = RANDOM_INSERT_LEN
    else:
        frame = pd.concat(list(iter_sequences(background, seq_col, id_col)), ignore_index=True)
        seqs, lines = frame["seq"].tolist(), frame["line"].to_numpy()
        lengths = np.array([layout.insert_length(s) for s in seqs])
        if (lengths != lengths[0]).any():
            row = int(np.flatnonzero(lengths != lengths[0])[0])
            raise DataError(background, int(lines[row]), f"insert of {lengths[row]} bp, but the first background's "
                                                         f"is {lengths[0]} bp; backgrounds need inserts of one length")
        usable = int(lengths[0])
    codes = encode_sequences(seqs, layout, background or "<random backgrounds>", lines)
    first = layout.seq_len - layout.insert_length(seqs[0])
    if len(bases) > usable:
        raise ValueError(f"motif of {len(bases)} bp does not fit into inserts of {usable} bp")
    wrapper = OneHotExpression(fold_batchnorm(model))
    table = marginalize_positions(wrapper, tangermeme_one_hot(codes), bases,
                                  range(first, first + usable - len(bases) + 1),
                                  precision=precision, device=device, progress=progress)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    figure_table = table.copy()
    table = table.assign(position=table["position"] - first + 1)
    with atomic_path(out_dir / "marginalize.tsv") as tmp:
        table.to_csv(tmp, sep="\t", index=False, float_format="%.6g")
    plot_marginalization(figure_table, bases, first, out_dir / "marginalize.png")
    return table
