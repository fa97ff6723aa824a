"""Procedural driving scenes seen from a car, rendered with Numba: intensity and class per pixel.

The world (metres; the camera looks along +Z, X to the right, height up): a flat road with lane
markings between sidewalks, grass beyond, building blocks on both sides with gaps, sky, and
billboards standing on the ground: trees, poles and signs, pedestrians and cars, some moving on
their own. Every surface carries a texture fixed in world coordinates, so that it moves with
perspective and makes events. The camera moves forward and sways sideways.

Classes are those of the DDD17 segmentation benchmark (Ev-SegNet): 0 flat (road, sidewalk),
1 construction and sky, 2 object (poles, signs), 3 nature (trees, grass), 4 human, 5 vehicle.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numba
import numpy as np

from evtools.kernels.parallel import PARALLEL_LAUNCH_LOCK
from evtools.labels import CONSTRUCTION_SKY, FLAT, HUMAN, NATURE, OBJECT, VEHICLE

WIDTH, HEIGHT = 346, 260
FOCAL_PX = 250.0
HORIZON_ROW = 95.0
CAMERA_HEIGHT_M = 1.4
ROAD_HALF_M, SIDEWALK_M, BUILDING_X_M = 3.6, 2.2, 10.0
# billboard shapes
BOX, TRUNK_CROWN, POLE_SIGN, PERSON, CAR = range(5)


@dataclass(frozen=True)
class Illumination:
    """Linear irradiance scales of one sequence: the events see log intensity, the APS the
    exposed, gamma-encoded value, so dark or high-contrast scenes differ between the two."""

    name: str
    ground: float  # sunlit ground and objects
    sky: float
    contrast: float  # texture amplitude, as a fraction of the surface's brightness


ILLUMINATIONS = {
    "day": Illumination("day", ground=0.55, sky=0.9, contrast=0.45),
    "dusk": Illumination("dusk", ground=0.06, sky=0.12, contrast=0.35),
    "high-contrast": Illumination("high-contrast", ground=0.25, sky=4.0, contrast=0.7),
}


@dataclass(frozen=True)
class SceneConfig:
    seed: int = 0
    speed_mps: float = 10.0
    sway_m: float = 0.8  # amplitude of the lateral motion
    sway_period_s: float = 4.0
    illumination: str = "day"
    length_m: float = 400.0  # world generated ahead of the start
    traffic: bool = True  # pedestrians and cars that move on their own
    wind_mps: float = 0.02  # drift of the clouds (in texture units per second)


@dataclass(frozen=True)
class Scene:
    """The world of one sequence: building blocks and billboards, generated from the seed."""

    config: SceneConfig
    blocks: np.ndarray  # (B, 5) float64: side (-1/+1), z_start, z_end, height, texture seed
    billboards: np.ndarray  # (N, 9) float64: x, z, width, height, shape, class, vx, vz, texture seed
    illumination: Illumination

    @classmethod
    def generate(cls, config: SceneConfig) -> Scene:
        rng = np.random.default_rng(config.seed)
        blocks = []
        for side in (-1.0, 1.0):
            z = rng.uniform(-10, 10)
            while z < config.length_m:
                length = rng.uniform(12, 35)
                blocks.append((side, z, z + length, rng.uniform(6, 22), rng.uniform(0, 1000)))
                z += length + rng.uniform(4, 18)
        boards = []

        def add(x, z, width, height, shape, cls_id, vx=0.0, vz=0.0):
            boards.append((x, z, width, height, shape, cls_id, vx, vz, rng.uniform(0, 1000)))

        for side in (-1.0, 1.0):
            for z in np.arange(rng.uniform(0, 8), config.length_m, rng.uniform(9, 16)):  # trees on the grass
                add(side * rng.uniform(ROAD_HALF_M + SIDEWALK_M + 0.8, BUILDING_X_M - 1.5), z, rng.uniform(2, 4),
                    rng.uniform(4, 8), TRUNK_CROWN, NATURE)
            for z in np.arange(rng.uniform(0, 20), config.length_m, rng.uniform(22, 35)):  # poles and signs
                add(side * (ROAD_HALF_M + 0.4), z, 0.25, rng.uniform(3, 6), POLE_SIGN, OBJECT)
            for _ in range(int(config.length_m / 30) if config.traffic else 0):  # pedestrians on the sidewalk
                add(side * rng.uniform(ROAD_HALF_M + 0.5, ROAD_HALF_M + SIDEWALK_M - 0.3), rng.uniform(5, config.length_m),
                    0.55, rng.uniform(1.6, 1.9), PERSON, HUMAN, vz=rng.choice([-1, 1]) * rng.uniform(0.8, 1.6))
        for _ in range(int(config.length_m / 25) if config.traffic else 0):  # cars: oncoming left, slower ahead right
            oncoming = rng.random() < 0.5
            add(-1.8 if oncoming else 1.8, rng.uniform(15, config.length_m + 100), 1.8, 1.5, CAR, VEHICLE,
                vz=-rng.uniform(8, 14) if oncoming else rng.uniform(2, 6))
        order = np.argsort([b[1] for b in boards])
        return cls(config, np.array(blocks, np.float64), np.array(boards, np.float64).reshape(-1, 9)[order],
                   ILLUMINATIONS[config.illumination])

    def camera(self, t_s: float) -> tuple[float, float]:
        """Camera (x, z) at time t."""
        c = self.config
        return c.sway_m * math.sin(2 * math.pi * t_s / c.sway_period_s), c.speed_mps * t_s

    def max_flow_px_s(self, t_s: float) -> float:
        """An upper bound of the image speed (pixels per second) anywhere in the view at time t:
        the nearest visible ground under forward motion and sway, and each billboard in view."""
        c = self.config
        cam_x, cam_z = self.camera(t_s)
        sway_speed = c.sway_m * 2 * math.pi / c.sway_period_s
        nearest_ground = CAMERA_HEIGHT_M * FOCAL_PX / (HEIGHT - HORIZON_ROW)
        radius = math.hypot(WIDTH / 2, HEIGHT - HORIZON_ROW)
        flow = (c.speed_mps * radius + sway_speed * FOCAL_PX) / nearest_ground
        boards = self.billboards
        depth = boards[:, 1] + boards[:, 7] * t_s - cam_z
        lateral = np.abs(boards[:, 0] + boards[:, 6] * t_s - cam_x) + boards[:, 2] / 2
        in_view = (depth > 1.0) & (lateral - boards[:, 2] < depth * (WIDTH / 2) / FOCAL_PX)
        if in_view.any():
            closing = np.abs(boards[in_view, 7] - c.speed_mps)
            d = depth[in_view]
            flow = max(flow, float((FOCAL_PX * (lateral[in_view] * closing / d**2 + sway_speed / d)).max()))
        return flow

    def render(self, t_s: float) -> tuple[np.ndarray, np.ndarray]:
        """Linear intensity (H, W) float32 and class ids (H, W) uint8 at time t."""
        cam_x, cam_z = self.camera(t_s)
        intensity = np.empty((HEIGHT, WIDTH), np.float32)
        classes = np.empty((HEIGHT, WIDTH), np.uint8)
        ill = self.illumination
        with PARALLEL_LAUNCH_LOCK:
            _render_background(cam_x, cam_z, t_s * self.config.wind_mps, self.blocks, ill.ground, ill.sky,
                               ill.contrast, intensity, classes)
        _render_billboards(cam_x, cam_z, t_s, self.billboards, ill.ground, ill.contrast, intensity, classes)
        return intensity, classes


@numba.njit(cache=True)
def _hash(ix, iy, seed):
    h = (ix * 374761393 + iy * 668265263 + int(seed) * 1442695041) & 0xFFFFFFFF
    h = ((h ^ (h >> 13)) * 1274126177) & 0xFFFFFFFF
    return ((h ^ (h >> 16)) & 0xFFFF) / 65535.0


@numba.njit(cache=True)
def _value_noise(u, v, seed):
    """Smooth value noise in [0, 1] at continuous coordinates (u, v)."""
    iu, iv = math.floor(u), math.floor(v)
    fu, fv = u - iu, v - iv
    fu, fv = fu * fu * (3 - 2 * fu), fv * fv * (3 - 2 * fv)
    iu, iv = int(iu), int(iv)
    a = _hash(iu, iv, seed) + fu * (_hash(iu + 1, iv, seed) - _hash(iu, iv, seed))
    b = _hash(iu, iv + 1, seed) + fu * (_hash(iu + 1, iv + 1, seed) - _hash(iu, iv + 1, seed))
    return a + fv * (b - a)


@numba.njit(cache=True)
def _texture(u, v, seed):
    """Two octaves of value noise, centred on 0, in about [-0.5, 0.5]."""
    return 0.65 * _value_noise(u, v, seed) + 0.35 * _value_noise(2.7 * u, 2.7 * v, seed + 17.0) - 0.5


@numba.njit(cache=True)
def _block_at(blocks, side, z):
    for b in range(blocks.shape[0]):
        if blocks[b, 0] == side and blocks[b, 1] <= z < blocks[b, 2]:
            return b
    return -1


@numba.njit(parallel=True, cache=True)
def _render_background(cam_x, cam_z, cloud_shift, blocks, ground, sky, contrast, intensity, classes):
    for row in numba.prange(HEIGHT):
        dy = (row + 0.5 - HORIZON_ROW) / FOCAL_PX
        for col in range(WIDTH):
            dx = (col + 0.5 - WIDTH / 2) / FOCAL_PX
            depth_ground = CAMERA_HEIGHT_M / dy if dy > 1e-4 else 1e9
            # a building wall on the side the ray goes to, if one is hit before the ground
            hit = False
            if abs(dx) > 1e-6:
                side = 1.0 if dx > 0 else -1.0
                depth_wall = (side * BUILDING_X_M - cam_x) / dx
                if 0 < depth_wall < depth_ground:
                    height = CAMERA_HEIGHT_M - dy * depth_wall
                    z = cam_z + depth_wall
                    b = _block_at(blocks, side, z)
                    if b >= 0 and height <= blocks[b, 3]:
                        hit = True
                        seed = blocks[b, 4]
                        # windows: a grid of darker rectangles on a textured facade
                        window = (z % 3.0 < 1.6) and (height % 3.2 > 1.0) and height > 1.0
                        base = 0.55 + 0.25 * _hash(int(seed), 0, 1.0)
                        value = base * (0.45 if window else 1.0) * (1 + contrast * _texture(z * 1.3, height * 1.3, seed))
                        intensity[row, col] = ground * value
                        classes[row, col] = CONSTRUCTION_SKY
            if hit:
                continue
            if dy > 1e-4:
                x = cam_x + dx * depth_ground
                z = cam_z + depth_ground
                ax = abs(x)
                if ax < ROAD_HALF_M:
                    marking = (abs(ax - 0.0) < 0.08 and (z % 6.0) < 3.0) or abs(ax - (ROAD_HALF_M - 0.2)) < 0.08
                    value = (0.95 if marking else 0.32) * (1 + contrast * _texture(x * 2.0, z * 2.0, 3.0))
                    cls = FLAT
                elif ax < ROAD_HALF_M + SIDEWALK_M:
                    tile = 0.08 if (x % 0.6 < 0.04 or z % 0.6 < 0.04) else 0.0
                    value = (0.62 - tile) * (1 + contrast * _texture(x * 3.0, z * 3.0, 5.0))
                    cls = FLAT
                else:
                    value = 0.38 * (1 + contrast * 1.4 * _texture(x * 1.7, z * 1.7, 7.0))
                    cls = NATURE
                intensity[row, col] = ground * value
                classes[row, col] = cls
            else:
                # sky: brighter towards the horizon, with slowly drifting clouds
                elevation = -dy
                clouds = _texture(dx * 3.0 / max(elevation, 0.05) + cloud_shift, 3.0 / max(elevation, 0.05), 11.0)
                intensity[row, col] = sky * (0.75 + 0.25 * (1 - min(elevation * 2, 1.0))) * (1 + 0.5 * contrast * clouds)
                classes[row, col] = CONSTRUCTION_SKY


@numba.njit(cache=True)
def _render_billboards(cam_x, cam_z, t_s, boards, ground, contrast, intensity, classes):
    # far to near, so that near billboards cover far ones
    n = boards.shape[0]
    depths = np.empty(n)
    for i in range(n):
        depths[i] = boards[i, 1] + boards[i, 7] * t_s - cam_z
    for i in np.argsort(-depths):
        depth = depths[i]
        if depth < 1.0 or depth > 150.0:
            continue
        x = boards[i, 0] + boards[i, 6] * t_s - cam_x
        width, height, shape, cls, seed = boards[i, 2], boards[i, 3], int(boards[i, 4]), boards[i, 5], boards[i, 8]
        scale = FOCAL_PX / depth
        centre = WIDTH / 2 + x * scale
        bottom = HORIZON_ROW + CAMERA_HEIGHT_M * scale
        top = HORIZON_ROW + (CAMERA_HEIGHT_M - height) * scale
        half = 0.5 * width * scale
        c0, c1 = max(int(centre - half), 0), min(int(centre + half) + 1, WIDTH)
        r0, r1 = max(int(top), 0), min(int(bottom) + 1, HEIGHT)
        for row in range(r0, r1):
            up = (bottom - row - 0.5) / scale  # height above the ground, metres
            for col in range(c0, c1):
                across = (col + 0.5 - centre) / scale  # metres from the centre line
                inside = False
                value = 0.5
                if shape == TRUNK_CROWN:
                    if up < height * 0.4:
                        inside = abs(across) < 0.15 * width / 2 + 0.1
                        value = 0.25
                    else:
                        ry = (up - height * 0.7) / (height * 0.3)
                        inside = across * across / (width * width / 4) + ry * ry < 1.0
                        value = 0.3 + 0.3 * _texture(across * 4, up * 4, seed)
                elif shape == POLE_SIGN:
                    inside = abs(across) < 0.08 or (up > height - 0.9 and abs(across) < 0.35)
                    value = 0.85 if up > height - 0.9 else 0.45
                elif shape == PERSON:
                    head = up > height - 0.25
                    inside = (abs(across) < 0.11) if head else (abs(across) < width / 2 * (0.6 if up < 0.9 else 1.0))
                    value = 0.7 if head else 0.2 + 0.4 * _hash(int(seed), 3, 2.0)
                elif shape == CAR:
                    inside = up < height
                    glass = up > height * 0.6 and abs(across) < width * 0.4
                    value = 0.15 if glass else 0.3 + 0.5 * _hash(int(seed), 5, 4.0)
                    if up < 0.35 and abs(abs(across) - width * 0.32) < 0.25:
                        value = 0.05  # wheels
                if inside:
                    intensity[row, col] = ground * value * (1 + contrast * _texture(across * 3, up * 3, seed))
                    classes[row, col] = cls
