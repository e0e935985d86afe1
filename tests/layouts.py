"""Sample layouts and dense references shared by the stage and functional
tests; independent of the library."""
import torch

EPS = 1e-12

# name -> (sample sizes, how the layout is passed)
LAYOUTS = {
    'single': ([5], 'none'),
    'equal_batch_size': ([3, 3, 3], 'batch_size'),
    'equal_batch': ([4, 4], 'batch'),
    'unequal_batch': ([3, 1, 4], 'batch'),
    'unequal_ptr': ([2, 5, 1], 'ptr'),
    'empty_samples': ([3, 0, 2, 0], 'batch+batch_size'),
}


def batch_of(sizes):
    return torch.repeat_interleave(torch.arange(len(sizes)),
                                   torch.tensor(sizes))


def layout_kwargs(sizes, how):
    batch = batch_of(sizes)
    ptr = torch.cat([torch.zeros(1, dtype=torch.long),
                     torch.tensor(sizes).cumsum(0)])
    return {
        'none': {},
        'batch_size': dict(batch_size=len(sizes)),
        'batch': dict(batch=batch),
        'ptr': dict(ptr=ptr),
        'batch+batch_size': dict(batch=batch, batch_size=len(sizes)),
    }[how]


def normalize_dense(w, normalize):
    """Dense [n, d] weights of ONE sample; max(norm, eps) as in
    F.normalize, clamped before the square root so gradients stay finite."""
    if normalize == 'l2_visible':  # each column over the sample's nodes
        return w / w.pow(2).sum(0, keepdim=True).clamp_min(EPS**2).sqrt()
    if normalize == 'l2_latent':  # each row over the latent nodes
        return w / w.pow(2).sum(1, keepdim=True).clamp_min(EPS**2).sqrt()
    return w
