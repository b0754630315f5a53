"""The edit file: round trips, and every kind of file that must be refused."""

from __future__ import annotations

import dataclasses
import datetime
import json
import pickle
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file

import analogize
from analogize.editfile import FORMAT_NAME, FORMAT_VERSION, content_digest, load_edit, read_metadata, save_edit
from analogize.errors import AnalogizeError
from analogize.methods import REGISTRY, get_method
from analogize.methods.base import Edit, Method, MethodConfig, Provenance
from analogize.pairs import PairSet

METADATA_KEYS = {"format", "format_version", "analogize_version", "method", "config", "provenance", "sha256"}


# A small method with real tensors (one of them 0-d), registered only for these tests.


@dataclass
class GainConfig(MethodConfig):
    boost: float = 1.0
    """Extra factor on the learned gain."""


class GainEdit(Edit):
    method = "test-gain"

    def __init__(self, config: GainConfig, gain: torch.Tensor, offset: torch.Tensor):
        super().__init__(config)
        self.gain = gain  # (3,) per-channel factor
        self.offset = offset  # () added after the gain

    def edit(self, image: np.ndarray, *, seed: int) -> np.ndarray:
        edited = image * self.gain.numpy() * self.config.boost + self.offset.item()
        return np.clip(edited, 0.0, 1.0).astype(np.float32)

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {"gain": self.gain, "offset": self.offset}

    @classmethod
    def from_state_dict(cls, tensors: dict[str, torch.Tensor], config: MethodConfig) -> "GainEdit":
        return cls(config, tensors["gain"], tensors["offset"])


class Gain(Method):
    name = "test-gain"
    summary = "test only: per-channel gain"
    config_class = GainConfig
    edit_class = GainEdit

    def fit(self, pairs: PairSet, config: MethodConfig, **_: object) -> tuple[Edit, int]:
        before = np.stack([pair.before for pair in pairs]).reshape(-1, 3).mean(axis=0)
        after = np.stack([pair.after for pair in pairs]).reshape(-1, 3).mean(axis=0)
        return GainEdit(config, torch.from_numpy(after / before), torch.tensor(0.01)), 1


@pytest.fixture
def gain_method(monkeypatch) -> Gain:
    method = Gain()
    monkeypatch.setitem(REGISTRY, method.name, method)
    return method


@pytest.fixture
def gain_edit_file(tmp_path, pair_folder, gain_method) -> Path:
    edit = gain_method.learn(PairSet.from_folder(pair_folder), gain_method.make_config(boost=1.5, seed=4))
    return save_edit(edit, tmp_path / "gain.edit")


def rewrite(
    path: Path,
    out: Path,
    tensors: dict[str, torch.Tensor] | None = None,
    keep_checksum: bool = False,
    **metadata_changes: str | None,
) -> Path:
    """Copy an edit file to `out` with some tensors or metadata replaced (None deletes a key).
    The checksum is recomputed, as a legitimate writer would, unless `keep_checksum` (tampering)."""
    with safe_open(path, framework="pt") as handle:
        metadata = dict(handle.metadata())
        original = {name: handle.get_tensor(name) for name in handle.keys()}
    for key, value in metadata_changes.items():
        if value is None:
            metadata.pop(key, None)
        else:
            metadata[key] = value
    tensors = original if tensors is None else tensors
    if not keep_checksum and "method" in metadata and "config" in metadata:
        metadata["sha256"] = content_digest(tensors, metadata["method"], metadata["config"])
    save_file(tensors, out, metadata=metadata)
    return out


def data_start(path: Path) -> int:
    """Offset of the first tensor byte: after the 8-byte header length and the JSON header."""
    (header_length,) = struct.unpack("<Q", path.read_bytes()[:8])
    return 8 + header_length


# --- round trips ---------------------------------------------------------------------------------


def test_identity_round_trip_and_metadata(tmp_path, pair_folder, image):
    method = get_method("identity")
    config = method.make_config(seed=7)
    edit = method.learn(PairSet.from_folder(pair_folder), config)
    path = save_edit(edit, tmp_path / "sub" / "identity.edit")

    metadata = read_metadata(path)
    assert set(metadata) == METADATA_KEYS
    assert metadata["format"] == FORMAT_NAME == "analogize.edit"
    assert metadata["format_version"] == str(FORMAT_VERSION)
    assert metadata["analogize_version"] == analogize.__version__
    assert metadata["method"] == "identity"
    assert json.loads(metadata["config"]) == dataclasses.asdict(config)
    provenance = json.loads(metadata["provenance"])
    assert {key: provenance[key] for key in ("pairs", "steps", "seed")} == {"pairs": 3, "steps": 0, "seed": 7}
    created = datetime.datetime.fromisoformat(provenance["created"])
    assert abs(datetime.datetime.now(datetime.timezone.utc) - created) < datetime.timedelta(minutes=5)
    assert metadata["sha256"] == content_digest({}, "identity", metadata["config"])

    loaded = load_edit(path)
    assert type(loaded) is type(edit)
    assert loaded.config == config
    assert loaded.provenance == edit.provenance
    np.testing.assert_array_equal(loaded.apply(image), image)


def test_edit_with_tensors_round_trips(tmp_path, gain_edit_file, image):
    loaded = load_edit(gain_edit_file)
    assert isinstance(loaded, GainEdit)
    assert loaded.config == GainConfig(boost=1.5, seed=4)
    assert isinstance(loaded.provenance, Provenance) and loaded.provenance.steps == 1
    assert loaded.offset.shape == ()  # a 0-d tensor survives (and is covered by the checksum)
    resaved = save_edit(loaded, tmp_path / "again.edit")
    again = load_edit(resaved)
    torch.testing.assert_close(again.gain, loaded.gain, rtol=0, atol=0)
    np.testing.assert_array_equal(again.apply(image, strength=0.7), loaded.apply(image, strength=0.7))
    assert not np.allclose(loaded.apply(image), image)


def quick_config(method: Method, base_model: Path, hypernetwork: Path) -> MethodConfig:
    """The method's smallest preset, cut to two training steps where it trains, on a tiny
    backbone where it needs one (or a tiny trained hypernetwork: loc)."""
    preset = "tiny" if "tiny" in method.presets else None
    fields = {field.name for field in dataclasses.fields(method.config_class)}
    overrides = {"steps": 2, "base_model": str(base_model), "hypernetwork": str(hypernetwork)}
    return method.make_config(preset, **{key: value for key, value in overrides.items() if key in fields})


@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_every_registered_method_round_trips_and_detects_tampering(
    tmp_path, pair_folder, image, name, assert_clear_error, tiny_backbones, tiny_hypernetwork
):
    method = get_method(name)
    edit = method.learn(PairSet.from_folder(pair_folder), quick_config(method, tiny_backbones["sd"], tiny_hypernetwork), progress=False)
    path = save_edit(edit, tmp_path / f"{name}.edit")
    loaded = load_edit(path)
    assert type(loaded) is type(edit) and loaded.config == edit.config
    np.testing.assert_allclose(loaded.apply(image, seed=1), edit.apply(image, seed=1), atol=1e-6)

    data = bytearray(path.read_bytes())
    if len(data) > data_start(path):  # the method stores tensors: alter their last byte
        data[-1] ^= 0xFF
        tampered = tmp_path / "tampered.edit"
        tampered.write_bytes(bytes(data))
        with pytest.raises(AnalogizeError) as caught:
            load_edit(tampered)
        assert_clear_error(caught.value, tampered, "checksum")


def test_digest_depends_on_names_dtypes_shapes_and_bytes():
    base = {"w": torch.arange(6, dtype=torch.float32)}
    variants = [
        {"v": torch.arange(6, dtype=torch.float32)},
        {"w": torch.arange(6, dtype=torch.float64)},
        {"w": torch.arange(6, dtype=torch.float32).reshape(2, 3)},
        {"w": torch.arange(6, dtype=torch.float32) + 1},
        {"w": torch.arange(6, dtype=torch.float32), "s": torch.tensor(0.0)},
    ]
    def digest(tensors, method="m", config="{}"):
        return content_digest(tensors, method, config)

    digests = {digest(base)} | {digest(variant) for variant in variants}
    digests |= {digest(base, method="other"), digest(base, config='{"seed": 1}')}
    assert len(digests) == len(variants) + 3
    assert digest(base) == digest({"w": torch.arange(6, dtype=torch.float32)})


# --- atomic writes -------------------------------------------------------------------------------


def test_save_leaves_no_temporary_file_and_overwrites(tmp_path, gain_edit_file):
    edit = load_edit(gain_edit_file)
    edit.gain = edit.gain * 2
    save_edit(edit, gain_edit_file)
    assert [p.name for p in tmp_path.iterdir() if p.is_file()] == ["gain.edit"]
    torch.testing.assert_close(load_edit(gain_edit_file).gain, edit.gain)


def test_failed_save_keeps_the_old_file(tmp_path, gain_edit_file, monkeypatch):
    old_bytes = gain_edit_file.read_bytes()
    edit = load_edit(gain_edit_file)

    def crash_halfway(self, data):
        with Path.open(self, "wb") as partial:
            partial.write(data[: len(data) // 2])
        raise OSError("disk full")

    monkeypatch.setattr(Path, "write_bytes", crash_halfway)
    with pytest.raises(OSError, match="disk full"):
        save_edit(edit, gain_edit_file)
    assert gain_edit_file.read_bytes() == old_bytes
    assert [p.name for p in tmp_path.iterdir() if p.is_file()] == ["gain.edit"]


# --- files that must be refused ------------------------------------------------------------------


def test_missing_edit_file(tmp_path, assert_clear_error):
    path = tmp_path / "nothing.edit"
    for reader in (load_edit, read_metadata):
        with pytest.raises(AnalogizeError) as caught:
            reader(path)
        assert_clear_error(caught.value, path, "no such edit file", "analogize learn")


@pytest.mark.parametrize("metadata", [None, {"format": "something.else", "method": "identity"}])
def test_safetensors_file_that_is_not_an_edit(tmp_path, metadata, assert_clear_error):
    path = tmp_path / "model.safetensors"
    save_file({"weight": torch.zeros(2, 2)}, path, metadata=metadata)
    for reader in (load_edit, read_metadata):
        with pytest.raises(AnalogizeError) as caught:
            reader(path)
        assert_clear_error(caught.value, path, "not an analogize edit file", "analogize learn")


def test_newer_format_version_is_refused(tmp_path, gain_edit_file, assert_clear_error):
    path = rewrite(gain_edit_file, tmp_path / "future.edit", format_version=str(FORMAT_VERSION + 1),
                   analogize_version="9.0.0")
    with pytest.raises(AnalogizeError) as caught:
        load_edit(path)
    assert_clear_error(caught.value, path, "newer", "9.0.0", "upgrade analogize")


@pytest.mark.parametrize("version", ["one", None])
def test_unreadable_format_version(tmp_path, gain_edit_file, version, assert_clear_error):
    path = rewrite(gain_edit_file, tmp_path / "odd.edit", format_version=version)
    with pytest.raises(AnalogizeError) as caught:
        load_edit(path)
    assert_clear_error(caught.value, path, "format version", "analogize learn")


@pytest.mark.parametrize("missing", ["method", "config"])
def test_missing_metadata_entries(tmp_path, gain_edit_file, missing, assert_clear_error):
    path = rewrite(gain_edit_file, tmp_path / "partial.edit", **{missing: None})
    with pytest.raises(AnalogizeError) as caught:
        load_edit(path)
    assert_clear_error(caught.value, path, repr(missing), "analogize learn")


@pytest.mark.parametrize("keep", [4, 20, -1])
def test_truncated_edit_file(tmp_path, gain_edit_file, keep, assert_clear_error):
    data = gain_edit_file.read_bytes()
    path = tmp_path / "cut.edit"
    path.write_bytes(data[:keep])
    for reader in (load_edit, read_metadata):
        with pytest.raises(AnalogizeError) as caught:
            reader(path)
        assert_clear_error(caught.value, path, "not a complete safetensors file", "copy the file again")


def test_tampered_tensor_bytes_are_caught(tmp_path, gain_edit_file, assert_clear_error):
    data = bytearray(gain_edit_file.read_bytes())
    start = data_start(gain_edit_file)
    assert len(data) > start  # the file really holds tensor bytes
    data[start] ^= 0xFF
    path = tmp_path / "tampered.edit"
    path.write_bytes(bytes(data))
    read_metadata(path)  # the header alone is still fine
    with pytest.raises(AnalogizeError) as caught:
        load_edit(path)
    assert_clear_error(caught.value, path, "checksum", "analogize learn")


def test_replaced_tensors_are_caught(tmp_path, gain_edit_file, assert_clear_error):
    path = rewrite(gain_edit_file, tmp_path / "swapped.edit", keep_checksum=True,
                   tensors={"gain": torch.ones(3, dtype=torch.float64), "offset": torch.tensor(0.0)})
    with pytest.raises(AnalogizeError) as caught:
        load_edit(path)
    assert_clear_error(caught.value, path, "checksum")


def test_altered_config_is_caught(tmp_path, gain_edit_file, assert_clear_error):
    config = json.loads(read_metadata(gain_edit_file)["config"])
    config["seed"] += 1
    path = rewrite(gain_edit_file, tmp_path / "reconfigured.edit", keep_checksum=True, config=json.dumps(config))
    with pytest.raises(AnalogizeError) as caught:
        load_edit(path)
    assert_clear_error(caught.value, path, "checksum")


def test_config_that_is_not_an_object_is_refused(tmp_path, gain_edit_file, assert_clear_error):
    path = rewrite(gain_edit_file, tmp_path / "list.edit", config="[1]")
    with pytest.raises(AnalogizeError) as caught:
        load_edit(path)
    assert_clear_error(caught.value, path, "config", "analogize learn")


def test_unknown_method_is_refused(tmp_path, gain_edit_file, assert_clear_error):
    path = rewrite(gain_edit_file, tmp_path / "unknown.edit", method="no-such-method")
    with pytest.raises(AnalogizeError) as caught:
        load_edit(path)
    assert_clear_error(caught.value, path, "unknown method", "'no-such-method'", "identity")


def test_unknown_config_setting_is_refused(tmp_path, gain_edit_file, assert_clear_error):
    config = json.dumps({"boost": 1.0, "seed": 0, "warp_factor": 9})
    path = rewrite(gain_edit_file, tmp_path / "setting.edit", config=config)
    with pytest.raises(AnalogizeError) as caught:
        load_edit(path)
    assert_clear_error(caught.value, path, "warp_factor", "boost")


def test_config_that_is_not_json_is_refused(tmp_path, gain_edit_file, assert_clear_error):
    path = rewrite(gain_edit_file, tmp_path / "json.edit", config="{boost: 1")
    with pytest.raises(AnalogizeError) as caught:
        load_edit(path)
    assert_clear_error(caught.value, path, "not valid JSON", "analogize learn")


def test_weights_that_do_not_fit_the_method(tmp_path, gain_edit_file, assert_clear_error):
    tensors = {"gain": torch.ones(3)}
    path = rewrite(gain_edit_file, tmp_path / "misfit.edit", tensors=tensors)
    with pytest.raises(AnalogizeError) as caught:
        load_edit(path)
    assert_clear_error(caught.value, path, "do not fit method 'test-gain'", "analogize learn")


class CreatesMarker:
    """Unpickling this opens (so creates) the marker file: the proof that a file was unpickled."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_pickles_are_refused_without_being_unpickled(tmp_path, assert_clear_error):
    marker = tmp_path / "unpickled.marker"
    torch_file = tmp_path / "weights.edit"
    torch.save({"weight": torch.zeros(2), "payload": CreatesMarker(marker)}, torch_file)
    plain_pickle = tmp_path / "plain.edit"
    plain_pickle.write_bytes(pickle.dumps(CreatesMarker(marker)))

    # The trap works: unpickling either file creates the marker.
    torch.load(torch_file, weights_only=False)["payload"].close()
    assert marker.exists()
    marker.unlink()
    pickle.loads(plain_pickle.read_bytes()).close()
    assert marker.exists()
    marker.unlink()

    for path in (torch_file, plain_pickle):
        for reader in (load_edit, read_metadata):
            with pytest.raises(AnalogizeError) as caught:
                reader(path)
            assert_clear_error(caught.value, path, "not a complete safetensors file")
    assert not marker.exists()


@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_every_registered_method_leaves_pixels_outside_the_strength_map_untouched(
    pair_folder, image, name, tiny_backbones, tiny_hypernetwork
):
    method = get_method(name)
    edit = method.learn(PairSet.from_folder(pair_folder), quick_config(method, tiny_backbones["sd"], tiny_hypernetwork), progress=False)
    strength_map = np.zeros(image.shape[:2], dtype=np.float32)
    strength_map[:, image.shape[1] // 2:] = 1.0
    result = edit.apply(image, strength_map=strength_map, seed=1)
    assert result.shape == image.shape
    np.testing.assert_array_equal(result[:, : image.shape[1] // 2 - 1], image[:, : image.shape[1] // 2 - 1])
