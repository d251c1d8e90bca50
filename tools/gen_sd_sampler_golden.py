#!/usr/bin/env python3
"""Golden data for the diffusion sampler tests (tests/models/test_sd_sampler.cc), from torch and
k-diffusion themselves.

  randn       torch.randn(n, generator=torch.Generator().manual_seed(seed)) on the CPU, float32,
              for sizes on both sides of torch's 16-element switch between its two normal
              algorithms, a stream of calls of mixed sizes on one generator, and whole SD
              latents as an FNV-1a hash of their float bits (little-endian).
  sigmas      k-diffusion's schedules over SD's discrete sigmas: DiscreteSchedule.get_sigmas (the
              discrete denoiser's, as CompVisDenoiser builds it from ldm's float32
              alphas_cumprod), get_sigmas_karras and get_sigmas_exponential between that
              schedule's sigma_min and sigma_max; steps 1, 8 and 30.
  sigma_to_t  DiscreteSchedule.sigma_to_t for a range of sigmas, outside the table's ends too.
  samplers    each sampler function of k_diffusion.sampling on a toy denoiser (defined identically
              in the C++ test), 8 steps, n = 64, x0 = randn(64) * sigmas[0] and every noise draw
              a torch.randn(64) from the same generator, in the order the sampler asks for it.
              DDIM (eta 0) and LCM are not in k-diffusion; they are written below from their
              papers' update rules (DDIM in the alpha-bar form, independent of our Euler
              identity). Each is run twice: in float64 (the stored reference) and in float32,
              and the largest float32-vs-float64 difference is stored beside it: how far a
              correct float32 implementation may drift.

Set-up: the venv with torch and k-diffusion (k-diffusion 0.1.1.post1 installed --no-deps).
Usage:  /work/venv-sd/bin/python tools/gen_sd_sampler_golden.py [--out tests/data/sd_sampler_golden.json]
"""

import argparse
import json
import math

import numpy as np
import torch
import k_diffusion.sampling as ks
from k_diffusion.external import DiscreteSchedule

RANDN_CASES = [(0, 1), (0, 15), (0, 16), (0, 17), (0, 256), (0, 1003),
               (42, 1), (42, 2), (42, 3), (42, 15), (42, 16), (42, 17), (42, 31), (42, 256),
               (1234567, 1), (1234567, 15), (1234567, 17), (1234567, 1000),
               (0xFFFFFFFF, 17), ((1 << 32) + 7, 17), ((1 << 63) + 12345, 16)]
STREAM = (777, [3, 20, 1, 7, 16, 5, 33])  # one generator, these calls in order
# Whole SD latents (1x4x64x64 at 512x512, 1x4x96x96 at 768x768), as a hash of the float bits.
RANDN_HASHED = [(42, 4 * 64 * 64), (3141592653, 4 * 96 * 96)]
STEPS = [1, 8, 30]
N = 64
SAMPLER_STEPS = 8


def f32(x):
    """A float32 value as the shortest decimal that reads back as the same float32."""
    return float(np.format_float_positional(np.float32(x), unique=True, trim='-'))


def fnv1a64(data):
    h = 0xcbf29ce484222325
    for b in data:
        h = ((h ^ b) * 0x100000001b3) & 0xFFFFFFFFFFFFFFFF
    return h


def discrete_schedule():
    # ldm's DDPM: betas in float64, alphas_cumprod by numpy, stored as a float32 buffer;
    # CompVisDenoiser takes sigmas from that buffer in float32.
    betas = torch.linspace(0.00085 ** 0.5, 0.012 ** 0.5, 1000, dtype=torch.float64) ** 2
    alphas_cumprod = torch.tensor(np.cumprod(1.0 - betas.numpy(), axis=0), dtype=torch.float32)
    return DiscreteSchedule(((1 - alphas_cumprod) / alphas_cumprod) ** 0.5, quantize=False)


def schedule_sigmas(sched, name, steps):
    if name == 'discrete':
        return sched.get_sigmas(steps)
    smin, smax = sched.sigma_min.item(), sched.sigma_max.item()
    if name == 'karras':
        return ks.get_sigmas_karras(steps, smin, smax)
    return ks.get_sigmas_exponential(steps, smin, smax)


def toy_denoiser(x, sigma):
    # Nonlinear in x and sigma; the C++ test defines the same function.
    s = sigma.to(x.dtype)[:, None]
    return x / (1 + s * s) + 0.1 * torch.tanh(x) * s / (1 + s)


def sample_ddim(model, x, sigmas, noise_sampler=None):
    """DDIM, eta 0, in the variance-preserving form: z = x / sqrt(1 + sigma^2),
    alpha_bar = 1 / (1 + sigma^2); z' = sqrt(alpha_bar') x0 + sqrt(1 - alpha_bar') eps."""
    s_in = x.new_ones([x.shape[0]])
    for i in range(len(sigmas) - 1):
        s, sn = sigmas[i], sigmas[i + 1]
        x0 = model(x, s * s_in)
        eps = (x - x0) / s
        a_next = 1 / (1 + sn * sn)
        z_next = a_next.sqrt() * x0 + (1 - a_next).sqrt() * eps
        x = z_next / a_next.sqrt()
    return x


def sample_lcm(model, x, sigmas, noise_sampler=None):
    """LCM's multistep sampling: the consistency model's estimate, re-noised to the next sigma."""
    s_in = x.new_ones([x.shape[0]])
    for i in range(len(sigmas) - 1):
        x = model(x, sigmas[i] * s_in)
        if sigmas[i + 1] > 0:
            x = x + sigmas[i + 1] * noise_sampler(sigmas[i], sigmas[i + 1])
    return x


SAMPLERS = [  # (our name, schedule, seed, function, takes a noise sampler)
    ('euler', 'discrete', 11, ks.sample_euler, False),
    ('euler_a', 'discrete', 12, ks.sample_euler_ancestral, True),
    ('heun', 'discrete', 13, ks.sample_heun, False),
    ('dpm2', 'discrete', 14, ks.sample_dpm_2, False),
    ('dpm++2m', 'discrete', 15, ks.sample_dpmpp_2m, False),
    ('dpm++2m', 'karras', 16, ks.sample_dpmpp_2m, False),
    ('dpm++sde', 'discrete', 17, ks.sample_dpmpp_sde, True),
    ('dpm++sde', 'karras', 18, ks.sample_dpmpp_sde, True),
    ('ddim', 'discrete', 19, sample_ddim, False),
    ('lcm', 'exponential', 20, sample_lcm, True),
    ('euler_a', 'karras', 21, ks.sample_euler_ancestral, True),
]


def run_sampler(fn, noisy, sigmas32, seed, dtype):
    g = torch.Generator().manual_seed(seed)
    x0 = torch.randn(N, generator=g) * sigmas32[0]  # float32, as the C++ test makes it
    x = x0.to(dtype)[None, :]
    kwargs = {'disable': True} if fn.__module__ == ks.__name__ else {}
    if noisy:
        kwargs['noise_sampler'] = lambda s, sn: torch.randn(N, generator=g).to(dtype)[None, :]
    with torch.no_grad():
        out = fn(toy_denoiser, x, sigmas32.to(dtype), **kwargs)
    return out[0], g


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--out', default='tests/data/sd_sampler_golden.json')
    args = ap.parse_args()
    torch.set_num_threads(1)

    randn = []
    for seed, n in RANDN_CASES:
        v = torch.randn(n, generator=torch.Generator().manual_seed(seed))
        randn.append({'seed': str(seed), 'n': n, 'values': [f32(a) for a in v.tolist()]})
    g = torch.Generator().manual_seed(STREAM[0])
    stream = {'seed': str(STREAM[0]), 'calls': []}
    for n in STREAM[1]:
        stream['calls'].append({'n': n, 'values': [f32(a) for a in torch.randn(n, generator=g).tolist()]})

    hashed = []
    for seed, n in RANDN_HASHED:
        v = torch.randn(n, generator=torch.Generator().manual_seed(seed)).numpy().astype('<f4')
        hashed.append({'seed': str(seed), 'n': n, 'fnv1a64': '%016x' % fnv1a64(v.tobytes()),
                       'sum': float(v.astype(np.float64).sum())})

    sched = discrete_schedule()
    sigmas = {name: {str(s): [f32(a) for a in schedule_sigmas(sched, name, s).tolist()] for s in STEPS}
              for name in ('discrete', 'karras', 'exponential')}
    probe = torch.tensor([0.01, 0.0291675, 0.03, 0.1, 0.5, 1.0, 2.0, 3.3, 7.0, 14.6146, 20.0],
                         dtype=torch.float32)
    sigma_to_t = [[f32(s), f32(t)] for s, t in zip(probe.tolist(), sched.sigma_to_t(probe).tolist())]

    samplers = []
    for name, sched_name, seed, fn, noisy in SAMPLERS:
        sig = schedule_sigmas(sched, sched_name, SAMPLER_STEPS).to(torch.float32)
        ref, _ = run_sampler(fn, noisy, sig, seed, torch.float64)
        got32, _ = run_sampler(fn, noisy, sig, seed, torch.float32)
        err32 = (got32.double() - ref).abs().max().item()
        samplers.append({'sampler': name, 'schedule': sched_name, 'seed': seed, 'steps': SAMPLER_STEPS,
                         'n': N, 'sigmas': [f32(a) for a in sig.tolist()],
                         'torch_f32_max_abs_err': err32, 'max_abs': ref.abs().max().item(),
                         'x': [float(a) for a in ref.tolist()]})
        print(f'{name:9s} {sched_name:12s} float32 vs float64: {err32:.3g} (max |x| {ref.abs().max().item():.3g})')

    with open(args.out, 'w') as f:
        json.dump({'torch': torch.__version__, 'randn': randn, 'randn_stream': stream,
                   'randn_hashed': hashed,
                   'sigmas': sigmas, 'sigma_to_t': sigma_to_t, 'samplers': samplers}, f,
                  separators=(',', ':'))
        f.write('\n')


if __name__ == '__main__':
    main()
