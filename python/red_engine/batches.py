"""A loaded batch, split across ranks by tokens and each rank's share into micro-batches.

The batch (src/train/engine.ts EngineBatch): ids (T), cu_seqlens (B+1), scored_from (B); sequence
b's scored tokens are ids[cu[b] + scored_from[b] ..< cu[b+1]], so the per-token arrays hold
N = Σ_b n_b entries, n_b = len_b − scored_from[b], sequence 0's first. Every rank receives the whole
batch and computes the same split, so no rank needs to be told another's share:
- ranks get contiguous runs of sequences of about T / world tokens each, so rank r's per-token
  outputs are one contiguous slice of the N (gathered in rank order, they are the batch's);
- a rank's sequences, longest first, fill right-padded (B, L) micro-batches while B·L stays within
  the token budget (a longer sequence gets one of its own);
- every rank runs the same number of micro-batches: short ranks add empty ones (one pad token,
  zero coefficients), so DDP's and FSDP's collectives pair up."""

import torch


class MicroBatch:
    def __init__(self, ids, rows, targets, dst, device):
        self.ids = ids.to(device)  # (B, L) right-padded with 0
        self.rows = rows.to(device)  # (n) flat indices into the (B·L) hidden states
        self.targets = targets.to(device)  # (n) the token each row predicts
        self.dst = dst.to(device)  # (n) indices into the batch's N per-token arrays
        self.empty = dst.numel() == 0


def rank_ranges(lengths, world):
    """[start, end) of the sequences of each rank: contiguous, about T / world tokens each."""
    total = sum(lengths)
    bounds, acc, b = [0], 0, 0
    for r in range(1, world):
        while b < len(lengths) and acc + lengths[b] / 2 < total * r / world:
            acc += lengths[b]
            b += 1
        bounds.append(b)
    bounds.append(len(lengths))
    return [(bounds[r], bounds[r + 1]) for r in range(world)]


def micro_groups(seqs, lengths, budget):
    """Sequences (indices) grouped longest first so that count · longest ≤ budget (0: one group)."""
    order = sorted(seqs, key=lambda s: -lengths[s])
    groups = []
    for s in order:
        if groups and (budget == 0 or (len(groups[-1]) + 1) * lengths[groups[-1][0]] <= budget):
            groups[-1].append(s)
        else:
            groups.append([s])
    return groups


def make_micro(group, ids, cu, scored_from, offsets, device):
    L = max(int(cu[s + 1] - cu[s]) for s in group)
    padded = torch.zeros(len(group), L, dtype=torch.long)
    rows, targets, dst = [], [], []
    for b, s in enumerate(group):
        begin, n = int(cu[s]), int(cu[s + 1] - cu[s])
        padded[b, :n] = ids[begin : begin + n]
        first = int(scored_from[s])
        # Scored token j sits at column first + j and is predicted by the row before it.
        cols = torch.arange(first, n)
        rows.append(b * L + cols - 1)
        targets.append(padded[b, first:n])
        dst.append(torch.arange(offsets[s], offsets[s] + n - first))
    cat = lambda xs: torch.cat(xs).long()  # noqa: E731
    return MicroBatch(padded, cat(rows), cat(targets), cat(dst), device)


def empty_micro(device):
    z = torch.zeros(1, dtype=torch.long)
    return MicroBatch(z.view(1, 1), z, z, z[:0], device)


class LoadedBatch:
    def __init__(self, ids, cu, scored_from, budget, rank, world, device):
        lengths = (cu[1:] - cu[:-1]).tolist()
        scored = [lengths[b] - int(scored_from[b]) for b in range(len(lengths))]
        offsets = [0]
        for n in scored:
            offsets.append(offsets[-1] + n)
        self.scored_tokens = offsets[-1]
        self.total_tokens = int(cu[-1])
        ranges = rank_ranges(lengths, world)
        # Rank r's outputs: the slice [offsets[start], offsets[end]) of the N.
        self.slices = [(offsets[a], offsets[b]) for a, b in ranges]
        counts = [len(micro_groups(range(a, b), lengths, budget)) for a, b in ranges]
        a, b = ranges[rank]
        self.micro = [make_micro(g, ids, cu, scored_from, offsets, device) for g in micro_groups(range(a, b), lengths, budget)]
        self.micro += [empty_micro(device) for _ in range(max(counts) - len(self.micro))]
