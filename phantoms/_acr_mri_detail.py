"""ACR MRI large phantom: high-contrast resolution (slice 1) and low-contrast detectability (slices 8-11).

Both look at structures of one to a few pixels, so both work on a band-limited (Fourier,
zero-padded) upsampling of a crop: MR images are formed from a finite k-space, so this
interpolation restores the continuous image far better than bilinear interpolation does.

Resolution (docs/conventions.md; ACR 2018 §2): the six 4 × 4 hole arrays (1.1, 1.0, 0.9 mm
holes, centre spacing 2 × diameter) are found as bright blobs in the dark resolution block
below the slice-thickness bar; left to right the pairs are 1.1, 1.0, 0.9 mm and in each pair
the upper-left array (UL) is profiled along rows, the lower-right (LR) along columns.  Each
hole's modulation is (peak − the higher neighbouring dip) / hole contrast, with peaks and dips
the extremes of the upsampled profile within ± d/2 of the hole centre / midpoint; an array is
resolved when, in at least one of its four rows (UL) or columns (LR), every hole's modulation is
≥ 0.25 ("all four holes in any single row distinguishable", ACR 2018 §2).

Low-contrast detectability (ACR 2018 §7): on each of slices 8-11, 10 spokes of 3 disks
(diameters 7.0 → 1.5 mm, disks 12.5, 25 and 38 mm from the centre of the low-contrast ring),
the spoke pattern's rotation found per slice by maximising the diameter-weighted sum of the 30
disks' t-values.  The
objective rule: a disk is *detected* when its contrast against a 2 mm annulus around it is
at least ``T_DETECT`` = 3 standard errors (one-sided p ≈ 0.0013 per disk) above the mean of an
annulus from 0.75 to 2.75 mm outside its edge (clear of the blurred edge), the standard error
from the pixel noise SD σ (robust, from neighbouring-pixel differences, floored at 0.2 % of the
signal so that noise-free images have a finite scale) and the disk and annulus areas in
pixels.  A spoke counts when its three disks are detected; counting stops at the first spoke
that fails; ``lcd_spokes`` is the sum over the four slices.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

from functools import lru_cache

import numpy as np
from scipy import ndimage
from scipy.fft import fft2, ifft2, irfft2, next_fast_len, rfft2

from iqa.kernels.profiles import bilinear_planes_inside
from iqa.phantoms._acr_mri_locate import Disk, ring_feature

HOLE_SIZES_MM = (1.1, 1.0, 0.9)
MODULATION_MIN = 0.25
LCD_RADII_MM = (12.5, 25.0, 38.0)
LCD_DIAMETERS_MM = tuple(7.0 - k * 5.5 / 9 for k in range(10))
LCD_SPOKE_STEP_DEG = -36.0          # spokes run clockwise from spoke 1 (largest disks)
LCD_ANNULUS_MM = (0.75, 2.75)     # background annulus: from r + 0.75 mm (clear of the blurred edge) to r + 2.75 mm
T_DETECT = 3.0
NOISE_FLOOR_FRACTION = 0.002


def upsample(image: np.ndarray, y0: int, x0: int, ny: int, nx: int, factor: int) -> np.ndarray:
    """Fourier (zero-padded) upsampling of ``image[y0:y0+ny, x0:x0+nx]`` by ``factor``.

    Output pixel (i, j) sits at crop coordinate (i / factor, j / factor).  The crop is taken
    with edge padding where it leaves the image.
    """
    image = np.asarray(image)
    # edge padding by clamped indices: only the crop is copied (not the whole padded image)
    rows = np.clip(np.arange(y0, y0 + ny), 0, image.shape[0] - 1)
    cols = np.clip(np.arange(x0, x0 + nx), 0, image.shape[1] - 1)
    crop = np.nan_to_num(image[np.ix_(rows, cols)].astype(np.float64))
    spec = np.fft.fftshift(fft2(crop))
    big = np.zeros((ny * factor, nx * factor), dtype=complex)
    oy, ox = (ny * factor) // 2 - ny // 2, (nx * factor) // 2 - nx // 2     # keep DC on DC
    big[oy:oy + ny, ox:ox + nx] = spec
    out = ifft2(np.fft.ifftshift(big)).real * factor * factor
    # zero-padded FFT interpolation keeps sample i at output i*factor exactly for odd sizes;
    # for even sizes the Nyquist row is split, which changes nothing measurable here
    return out


def _sample(img: np.ndarray, y: np.ndarray, x: np.ndarray) -> np.ndarray:
    return ndimage.map_coordinates(img, [np.ravel(y), np.ravel(x)], order=1, mode="nearest",
                                   prefilter=False).reshape(np.shape(y))


# --------------------------------------------------------------------------- resolution

@dataclass(slots=True)
class Resolution:
    ul_mm: float | None
    lr_mm: float | None
    modulation: dict[str, float] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)


def resolution(image: np.ndarray, spacing_mm: tuple[float, float], disk: Disk, frame, *,
               factor: int = 4) -> Resolution:
    """High-contrast resolution from the hole arrays of slice 1 (see module docstring)."""
    px = math.sqrt(spacing_mm[0] * spacing_mm[1])
    r = disk.radius_px
    c, s = math.cos(frame.angle_rad), math.sin(frame.angle_rad)
    level = disk.background + 0.5 * (disk.signal - disk.background)

    def to_img(u, v):      # frame (px from centre) -> image (y, x)
        return frame.cy - u * s + v * c, frame.cx + u * c + v * s

    # the block: dark region below the bar
    u = np.arange(-0.6 * r, 0.6 * r, 0.5)
    v = np.arange(frame.bar_bottom_v + 1.0, frame.bar_bottom_v + 0.6 * r, 0.5)
    yy, xx = to_img(u[None, :], v[:, None])
    grid = _sample(np.nan_to_num(image.astype(np.float64)), yy, xx)
    dark = grid < level

    def run(idx):     # the longest contiguous run of indices
        splits = np.split(idx, np.flatnonzero(np.diff(idx) > 2) + 1)
        best = max(splits, key=len)
        return best[0], best[-1]

    rows = np.flatnonzero(dark.mean(axis=1) > 0.4)
    if rows.size < 5:
        return Resolution(None, None, warnings=["resolution: hole-array block not found on slice 1"])
    r0, r1 = run(rows)
    cols = np.flatnonzero(dark[r0:r1 + 1].mean(axis=0) > 0.5)
    if cols.size < 10:
        return Resolution(None, None, warnings=["resolution: hole-array block not found on slice 1"])
    c0, c1 = run(cols)
    bu0, bu1, bv0, bv1 = u[c0], u[c1], v[r0], v[r1]
    # upsampled crop of the block (axis-aligned box around the rotated block)
    corners = [to_img(a, b) for a in (bu0, bu1) for b in (bv0, bv1)]
    ys = [p[0] for p in corners]
    xs = [p[1] for p in corners]
    y0, x0 = int(math.floor(min(ys))) - 12, int(math.floor(min(xs))) - 12
    ny, nx = int(math.ceil(max(ys))) + 12 - y0, int(math.ceil(max(xs))) + 12 - x0
    up = upsample(image, y0, x0, ny, nx, factor)

    def sample_frame(uu, vv):
        iy, ix = to_img(uu, vv)
        return _sample(up, (np.asarray(iy) - y0) * factor, (np.asarray(ix) - x0) * factor)

    # hole contrast: water below the block minus the no-signal level (air; plastic gives no signal)
    water = np.median(sample_frame(np.linspace(bu0, bu1, 40)[None, :],
                                   (bv1 + np.array([3.0, 4.0, 5.0]) / px)[:, None]))
    # bright blobs inside the block (smoothed over ~1 mm so that each array is one blob)
    step = 0.25 / px * 1.0                     # 0.25 mm in frame pixels
    uu = np.arange(bu0 + 1.0 / px, bu1 - 1.0 / px, step)
    vv = np.arange(bv0 + 1.0 / px, bv1 - 1.0 / px, step)
    blk = sample_frame(uu[None, :], vv[:, None])
    plastic = float(np.percentile(blk, 20))
    contrast = float(water - disk.background)
    if not contrast > 0:
        return Resolution(None, None, warnings=["resolution: no hole contrast on slice 1"])
    # each array is a 7d x 7d patch of holes (~20 % water): a 7 mm box filter turns each into a
    # single peak of ~0.1-0.25 of the contrast; full-water features (the real insert's squares)
    # give ~1 and are ignored, as is anything within 3.5 mm of the block edge
    sm = ndimage.uniform_filter(blk, size=28, mode="nearest")
    peak = (sm == ndimage.maximum_filter(sm, size=17, mode="nearest"))
    peak &= (sm > plastic + 0.04 * contrast) & (sm < plastic + 0.6 * contrast)
    margin = int(3.5 / 0.25)
    peak[:margin] = peak[-margin:] = False
    peak[:, :margin] = peak[:, -margin:] = False
    # solid water squares (alignment marks of the real insert) are mostly bright; arrays are not
    solid = ndimage.uniform_filter((blk > plastic + 0.5 * contrast).astype(float), size=24, mode="nearest")
    peak &= solid < 0.35
    py, pxs = np.nonzero(peak)
    order = np.argsort(sm[py, pxs])[::-1]
    blobs: list = []
    for k in order:                    # strongest first, at least 4 mm apart
        cand = (float(uu[pxs[k]]), float(vv[py[k]]), float(sm[py[k], pxs[k]]))
        if all(math.hypot(cand[0] - b[0], cand[1] - b[1]) * px > 4.0 for b in blobs):
            blobs.append(cand)
        if len(blobs) == 6:
            break
    if len(blobs) != 6:
        return Resolution(None, None, warnings=[f"resolution: found {len(blobs)} hole arrays on slice 1, expected 6"])
    blobs.sort()
    out = Resolution(None, None)
    resolved = {"ul": [], "lr": []}
    for pair, d in enumerate(HOLE_SIZES_MM):
        a, b = blobs[2 * pair], blobs[2 * pair + 1]
        ul, lr = (a, b) if a[1] < b[1] else (b, a)
        for kind, (cu, cv, _) in (("ul", ul), ("lr", lr)):
            m = _array_modulation(sample_frame, cu, cv, d / px, kind, contrast)
            out.modulation[f"{kind}_{d:.1f}"] = m
            if m >= MODULATION_MIN:
                resolved[kind].append(d)
    out.ul_mm = min(resolved["ul"]) if resolved["ul"] else None
    out.lr_mm = min(resolved["lr"]) if resolved["lr"] else None
    for kind in ("ul", "lr"):
        if not resolved[kind]:
            out.warnings.append(f"resolution_{kind}_mm: no hole array reaches modulation {MODULATION_MIN}")
    return out


def _array_modulation(sample_frame, cu: float, cv: float, d: float, kind: str, contrast: float) -> float:
    """Smallest hole modulation of a 4 × 4 array centred near (cu, cv) (frame px), holes d px apart 2d."""
    offs = (np.arange(4) - 1.5) * 2 * d
    # refine the array centre: maximise the summed signal at the 16 hole centres
    for span, stepf in ((d, d / 4), (d / 4, d / 24)):      # coarse then fine search
        shifts = np.arange(-span, span + 1e-9, stepf)
        su = (cu + shifts)[:, None, None, None] + offs[None, None, None, :]
        sv = (cv + shifts)[None, :, None, None] + offs[None, None, :, None]
        su, sv = np.broadcast_arrays(su, sv)
        total = sample_frame(su, sv).sum(axis=(2, 3))
        i, j = np.unravel_index(int(np.argmax(total)), total.shape)
        cu, cv = cu + shifts[i], cv + shifts[j]
    t = np.arange(-4 * d, 4 * d + 1e-9, d / 16)       # along the profile, 16 samples per diameter
    if kind == "ul":           # along rows (u), rows at v = cv + line
        su, sv = np.broadcast_arrays((cu + t)[None, :], (cv + offs)[:, None])
    else:                      # along columns (v), columns at u = cu + line
        su, sv = np.broadcast_arrays((cu + offs)[:, None], (cv + t)[None, :])
    profs = sample_frame(su, sv)                     # (4 lines, samples)
    mids = 0.5 * (offs[:-1] + offs[1:])
    peaks = np.stack([profs[:, np.abs(t - o) <= d / 2].max(axis=1) for o in offs], axis=1)   # (4, 4)
    dips = np.stack([profs[:, np.abs(t - o) <= d / 2].min(axis=1) for o in mids], axis=1)    # (4, 3)
    worst_dip = np.stack([dips[:, 0], np.maximum(dips[:, 0], dips[:, 1]),
                          np.maximum(dips[:, 1], dips[:, 2]), dips[:, 2]], axis=1)
    # ACR 2018 §2: an array is resolved when all four holes of any single row (column) are distinct
    worst = float(((peaks - worst_dip) / contrast).min(axis=1).max())
    return worst


# --------------------------------------------------------------------------- low-contrast detectability

@dataclass(slots=True)
class Lcd:
    total: int | None
    per_slice: tuple[int, ...] = ()
    warnings: list[str] = field(default_factory=list)
    rotation_deg: tuple[float, ...] = ()


def _noise_sd(image: np.ndarray) -> float:
    """Robust pixel-noise SD from horizontal neighbour differences (MAD / 0.6745 / √2)."""
    d = np.diff(image, axis=1).ravel()
    return float(np.median(np.abs(d - np.median(d))) / 0.6745 / math.sqrt(2))


@lru_cache(maxsize=64)
def _disk_kernel_ft(radius_px: float, shape: tuple[int, int]) -> tuple[np.ndarray, float]:
    """rFFT of the digital disk ``dy² + dx² <= r²`` centred on pixel (0, 0) with wrap-around,
    and its pixel count (for FFT convolution; cached: the same sizes recur on every slice)."""
    big = int(math.floor(radius_px + 1e-9))
    k = np.zeros(shape)
    dy, dx = np.mgrid[-big:big + 1, -big:big + 1]
    inside = dy * dy + dx * dx <= radius_px * radius_px + 1e-9
    k[dy[inside] % shape[0], dx[inside] % shape[1]] = 1.0
    out = rfft2(k)
    out.setflags(write=False)
    return out, float(inside.sum())


@lru_cache(maxsize=64)
def _annulus_kernel_ft(diameter_mm: float, upx: float, shape: tuple[int, int]) -> tuple[np.ndarray, float]:
    """rFFT and pixel count of the background annulus of a disk of ``diameter_mm``
    (``LCD_ANNULUS_MM`` outside its edge) at ``upx`` mm per pixel: outer digital disk minus inner."""
    (ki, ni), (ko, no) = (_disk_kernel_ft((diameter_mm / 2 + a) / upx, shape) for a in LCD_ANNULUS_MM)
    out = ko - ki
    out.setflags(write=False)
    return out, no - ni


@lru_cache(maxsize=64)
def _contrast_kernel_ft(diameter_mm: float, upx: float, shape: tuple[int, int]) -> tuple[np.ndarray, float, float]:
    """rFFT of the disk-mean-minus-annulus-mean kernel of a disk of ``diameter_mm`` at ``upx``
    mm per pixel, and the disk's and the annulus's pixel counts."""
    (kd, nd), (ka, na) = _disk_kernel_ft(diameter_mm / 2 / upx, shape), _annulus_kernel_ft(diameter_mm, upx, shape)
    out = kd / nd - ka / na
    out.setflags(write=False)
    return out, nd, na


class _LcdSlice:
    """t-value maps of one low-contrast slice and the template sampler (see module docstring)."""

    def __init__(self, image: np.ndarray, spacing_mm: tuple[float, float], disk: Disk, factor: int = 2):
        px = math.sqrt(spacing_mm[0] * spacing_mm[1])
        ring = ring_feature(image, disk)
        cy, cx = (ring.cy, ring.cx) if ring.coverage >= 0.9 else (disk.cy, disk.cx)
        half = int(math.ceil((max(LCD_RADII_MM) + 6.0) / px))
        n = next_fast_len(2 * half + 1, real=True)
        half = n // 2
        y0, x0 = int(round(cy)) - half, int(round(cx)) - half
        up = upsample(image, y0, x0, n, n, factor)
        upx = px / factor
        self.upx = upx
        self.ucy, self.ucx = (cy - y0) * factor, (cx - x0) * factor
        r30 = int(30 / px)
        inner = np.asarray(image, dtype=np.float64)[int(round(cy)) - r30:int(round(cy)) + r30,
                                                     int(round(cx)) - r30:int(round(cx)) + r30]
        signal = float(np.median(inner))
        sigma = max(_noise_sd(inner), NOISE_FLOOR_FRACTION * abs(signal))
        spec = rfft2(up)
        self.tmaps = np.empty((len(LCD_DIAMETERS_MM),) + up.shape)
        for k, dmm in enumerate(LCD_DIAMETERS_MM):
            kc, nd, na = _contrast_kernel_ft(dmm, upx, up.shape)
            # standard error in original pixels: each original pixel spans factor² upsampled ones
            se = sigma * math.sqrt(factor * factor / nd + factor * factor / na)
            # disk mean minus annulus mean as one convolution (the FFT is linear)
            np.divide(irfft2(spec * kc, s=up.shape, overwrite_x=True), se, out=self.tmaps[k])
        self.rad = np.array(LCD_RADII_MM)[None, None, :] / upx
        self.kidx = np.broadcast_to(np.arange(10)[None, :, None], (1, 10, 3)).astype(float)

    def tvals(self, phis, sense: float, dy: float = 0.0, dx: float = 0.0) -> np.ndarray:
        """t-values (phi, spoke, disk) with spoke 1 at angle phi and spokes every 36° (sense ±1),
        the pattern centre shifted by (dy, dx) upsampled pixels from the ring centre."""
        phis = np.atleast_1d(np.asarray(phis, dtype=float))
        ang = np.radians(phis[:, None, None] + sense * LCD_SPOKE_STEP_DEG * np.arange(10)[None, :, None])
        yy = self.ucy + dy - self.rad * np.sin(ang)
        xx = self.ucx + dx + self.rad * np.cos(ang)
        vals = bilinear_planes_inside(self.tmaps, self.kidx, yy, xx)     # scipy's arithmetic, bit for bit
        if vals is not None:
            return vals
        kk = np.broadcast_to(self.kidx, yy.shape)                        # near the map border: scipy's modes
        return ndimage.map_coordinates(self.tmaps, [kk.ravel(), yy.ravel(), xx.ravel()], order=1, mode="nearest",
                                       prefilter=False).reshape(yy.shape)

    def score(self, phis, sense: float) -> np.ndarray:
        # spokes weighted by disk diameter so that the pattern cannot slip by whole spokes (a
        # 10-fold near-symmetry): the big-disk end of the template must land on the big disks
        weight = np.array(LCD_DIAMETERS_MM)[None, :, None] / LCD_DIAMETERS_MM[0]
        return (np.clip(self.tvals(phis, sense), -3, None) * weight).sum(axis=(1, 2))


def _count(t: np.ndarray, t_detect: float) -> int:
    count = 0
    for k in range(10):
        if np.all(t[k] >= t_detect):
            count += 1
        else:
            break
    return count


def lcd_spokes(images: list[np.ndarray], spacing_mm: tuple[float, float], disks: list[Disk], *,
               t_detect: float = T_DETECT, max_step_deg: float = 15.0) -> Lcd:
    """Total spokes over slices 8-11 (see module docstring).

    The four disk patterns are fitted jointly: spoke 1 of slice 8+k at ``phi + k·step``, with a
    common sense (clockwise or mirrored) and a constant step between slices (0 in the fixtures;
    about −10° in the real phantom, whose disks are turned from slice to slice), searched over
    ``|step| <= max_step_deg``.  One shared fit keeps a slice with few visible spokes from
    locking onto noise.
    """
    slices = [_LcdSlice(im, spacing_mm, d) for im, d in zip(images, disks)]
    grid = np.arange(0.0, 360.0, 1.0)
    steps = np.arange(-max_step_deg, max_step_deg + 1e-9, 1.0)
    best = (-math.inf, 0.0, 0.0, 1.0)
    for sense in (1.0, -1.0):
        tables = np.stack([sl.score(grid, sense) for sl in slices])          # (slice, phi)
        for step in steps:
            idx = (np.arange(360)[None, :] + np.round(step * np.arange(len(slices)))[:, None].astype(int)) % 360
            total = np.take_along_axis(tables, idx, axis=1).sum(axis=0)
            i = int(np.argmax(total))
            if total[i] > best[0]:
                best = (float(total[i]), float(grid[i]), float(step), sense)
    _, phi, step, sense = best
    # refine each slice locally around the joint fit: angle ±1.5° and the pattern centre ±1 mm
    # (the disk pattern need not be concentric with the ring to a pixel, and a small error
    # displaces the outer 1.5 mm disks by more than their radius); here every disk counts
    # alike, capped, so that the small disks steer the fit
    counts, rots = [], []
    for k, sl in enumerate(slices):
        fine = phi + step * k + np.arange(-1.5, 1.5 + 1e-9, 0.25)
        shifts = np.arange(-1.0, 1.0 + 1e-9, 0.25) / sl.upx
        fa, sy, sx = (g.ravel() for g in np.meshgrid(fine, shifts, shifts, indexing="ij"))
        sc = np.clip(sl.tvals(fa, sense, sy[:, None, None], sx[:, None, None]), -3, 8).sum(axis=(1, 2))
        i = int(np.argmax(sc))
        a, dy, dx = float(fa[i]), float(sy[i]), float(sx[i])
        counts.append(_count(sl.tvals(a, sense, dy, dx)[0], t_detect))
        rots.append(a % 360.0)
    return Lcd(int(sum(counts)), tuple(counts), [], tuple(rots))


def lcd_slice(image: np.ndarray, spacing_mm: tuple[float, float], disk: Disk, *,
              t_detect: float = T_DETECT) -> tuple[int, float, np.ndarray]:
    """One slice on its own: (count, rotation of spoke 1 in degrees, t-values (10, 3))."""
    sl = _LcdSlice(image, spacing_mm, disk)
    fits = []
    for sense in (1.0, -1.0):
        grid = np.arange(0.0, 360.0, 1.0)
        sc = sl.score(grid, sense)
        fine = grid[int(np.argmax(sc))] + np.arange(-1.5, 1.5 + 1e-9, 0.25)
        sf = sl.score(fine, sense)
        fits.append((float(sf.max()), float(fine[int(np.argmax(sf))]), sense))
    _, a, sense = max(fits)
    t = sl.tvals(a, sense)[0]
    return _count(t, t_detect), a % 360.0, t
