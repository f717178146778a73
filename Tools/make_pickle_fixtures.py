#!/usr/bin/env python3
"""Writes the .ckpt fixtures of TorchCheckpoint's tests.

A dev tool, never needed by the test command: its output is committed under
Tests/StableDiffusionTests/Fixtures/pickle/.
Run: pip install torch numpy && python3 Tools/make_pickle_fixtures.py

- good*.ckpt: torch.save of an SD-shaped state dict (float32/16, bfloat16, float64, int64,
  int32, bool, a transposed view, views sharing one storage, a stride-0 expansion, a 0-dim
  and an empty tensor, a Parameter) at pickle protocols 1, 2 (torch's default), 4 and 5, and
  rewritten with zip64 records; expected values in good.json.
- lightning.ckpt: a Lightning-style checkpoint (numpy global_step, ModelCheckpoint as a
  callbacks key, optimizer states, non-tensor state-dict entries); expected in lightning.json.
- hostile/*.ckpt: malicious or damaged files, each with the error code and a message
  fragment the loader must produce, listed in hostile.json. Payloads would create
  /tmp/farm-pwned-<random> if anything executed them.
"""
import collections
import json
import pathlib
import secrets
import struct
import sys
import types
import zipfile
import zlib

import numpy as np
import torch
import torch.nn as nn

out_dir = pathlib.Path(__file__).resolve().parent.parent / "Tests" / "StableDiffusionTests" / "Fixtures" / "pickle"
hostile_dir = out_dir / "hostile"
hostile_dir.mkdir(parents=True, exist_ok=True)
for old in list(out_dir.glob("*.ckpt")) + list(hostile_dir.glob("*.ckpt")):
    old.unlink()
torch.manual_seed(1234)


# --- A small zip writer: stored or deflated entries, torch's 64-byte data alignment, optional zip64 ---

def write_zip(path, entries, zip64=False, deflate=()):
    """entries: list of (name, bytes). Names in `deflate` are compressed; zip64 forces zip64 records."""
    out = bytearray()
    central = bytearray()
    for name, data in entries:
        raw_name = name.encode()
        method = 8 if name in deflate else 0
        body = data
        if method == 8:
            compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
            body = compressor.compress(data) + compressor.flush()
        crc = zlib.crc32(data) & 0xFFFFFFFF
        offset = len(out)
        local_extra = b""
        if zip64:
            local_extra += struct.pack("<HHQQ", 1, 16, len(data), len(body))
        # Pad like torch does, so that each entry's data starts on a 64-byte boundary.
        unpadded = offset + 30 + len(raw_name) + len(local_extra) + 4
        pad = (-unpadded) % 64
        local_extra += struct.pack("<HH", 0x4B46, pad) + b"Z" * pad
        sizes = (0xFFFFFFFF, 0xFFFFFFFF) if zip64 else (len(body), len(data))
        out += struct.pack("<IHHHHHIIIHH", 0x04034B50, 45 if zip64 else 20, 0x800, method, 0, 0x21,
                           crc, sizes[0], sizes[1], len(raw_name), len(local_extra))
        out += raw_name + local_extra + body
        central_extra = struct.pack("<HHQQQ", 1, 24, len(data), len(body), offset) if zip64 else b""
        central += struct.pack("<IHHHHHHIIIHHHHHII", 0x02014B50, 45 if zip64 else 20, 45 if zip64 else 20, 0x800, method,
                               0, 0x21, crc, sizes[0], sizes[1], len(raw_name), len(central_extra), 0, 0, 0, 0,
                               0xFFFFFFFF if zip64 else offset)
        central += raw_name + central_extra
    directory_offset = len(out)
    out += central
    count = len(entries)
    if zip64:
        zip64_offset = len(out)
        out += struct.pack("<IQHHIIQQQQ", 0x06064B50, 44, 45, 45, 0, 0, count, count, len(central), directory_offset)
        out += struct.pack("<IIQI", 0x07064B50, 0, zip64_offset, 1)
        out += struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, 0xFFFF, 0xFFFF, 0xFFFFFFFF, 0xFFFFFFFF, 0)
    else:
        out += struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, count, count, len(central), directory_offset, 0)
    path.write_bytes(bytes(out))


def read_entries(path):
    with zipfile.ZipFile(path) as archive:
        return [(info.filename, archive.read(info.filename)) for info in archive.infolist()]


def torch_zip(path, pickle_bytes, storages=None, byteorder=b"little"):
    """A torch.save-like archive around a hand-made pickle."""
    entries = [("archive/data.pkl", pickle_bytes), ("archive/byteorder", byteorder)]
    entries += [(f"archive/data/{key}", data) for key, data in (storages or {}).items()]
    entries += [("archive/version", b"3\n")]
    write_zip(path, entries)


def expected(state_dict):
    result = {}
    for key, value in state_dict.items():
        if isinstance(value, torch.Tensor):
            converted = value.detach().to(torch.float32)
            result[key] = {"shape": list(converted.shape), "values": converted.contiguous().flatten().tolist()}
    return result


# --- The good checkpoint: an SD-shaped state dict from a module tree, so it is an OrderedDict with _metadata ---

root = nn.Module()
root.model = nn.Module()
root.model.diffusion_model = nn.Module()
root.model.diffusion_model.input_blocks = nn.ModuleList([nn.ModuleList([nn.Conv2d(3, 4, 3)])])
root.first_stage_model = nn.Module()
root.first_stage_model.decoder = nn.Module()
root.first_stage_model.decoder.conv_in = nn.Conv2d(4, 2, 1).half()
root.cond_stage_model = nn.Module()
root.cond_stage_model.embeddings = nn.Embedding(7, 3).to(torch.bfloat16)
root.cond_stage_model.register_buffer("position_ids", torch.arange(7).unsqueeze(0))
root.register_buffer("alphas_cumprod", torch.cumprod(1 - torch.linspace(0.00085, 0.012, 5, dtype=torch.float64), 0))
root.register_buffer("logit_scale", torch.tensor(4.6052))
root.register_buffer("num_updates", torch.tensor(1234, dtype=torch.int32))
root.register_buffer("mask", torch.tensor([True, False, True]))
root.register_buffer("empty", torch.zeros(0, 3))
state = root.state_dict()

# Views saved as-is: torch.save keeps their strides and offsets and writes each storage once.
base = torch.randn(4, 6)
state["views.transposed"] = base.t()
state["views.rows"] = base[1:3]
state["views.column"] = base[:, 2]
state["views.permuted"] = torch.randn(2, 3, 4).permute(2, 0, 1)
state["views.expanded"] = torch.tensor([1.0, -2.0, 3.0]).expand(4, 3)
state["special.f16"] = torch.tensor([0.0, -0.0, 65504.0, -65504.0, 2.0 ** -24, -(2.0 ** -20), 1 / 3, 1e-3],
                                    dtype=torch.float16)
state["special.bf16"] = torch.tensor([1e38, -1e-38, 3.140625, 0.0], dtype=torch.bfloat16)
state["model.parameter"] = nn.Parameter(torch.randn(2, 2))

good_state = state
good = {"state_dict": state, "global_step": 123, "epoch": 2}
for protocol, name in [(2, "good.ckpt"), (1, "good_protocol1.ckpt"), (4, "good_protocol4.ckpt"),
                       (5, "good_protocol5.ckpt")]:
    torch.save(good, out_dir / name, pickle_protocol=protocol)
write_zip(out_dir / "good_zip64.ckpt", read_entries(out_dir / "good.ckpt"), zip64=True)
(out_dir / "good.json").write_text(json.dumps({
    "files": ["good.ckpt", "good_protocol1.ckpt", "good_protocol4.ckpt", "good_protocol5.ckpt", "good_zip64.ckpt"],
    "tensors": expected(state),
}, indent=1) + "\n")


# --- A Lightning-style checkpoint, as sd-v1-x "full" checkpoints are ---

# A stand-in for Lightning's class (pickle only records its name); pickle imports its parent packages too.
for package in ["pytorch_lightning", "pytorch_lightning.callbacks"]:
    sys.modules.setdefault(package, types.ModuleType(package))
lightning_module = types.ModuleType("pytorch_lightning.callbacks.model_checkpoint")


class ModelCheckpoint:
    pass


ModelCheckpoint.__module__ = lightning_module.__name__
lightning_module.ModelCheckpoint = ModelCheckpoint
sys.modules[lightning_module.__name__] = lightning_module

lightning_state = collections.OrderedDict()
lightning_state["model.diffusion_model.out.2.bias"] = torch.randn(4)
lightning_state["model_ema.decay"] = torch.tensor(0.9999)
lightning_state["model.note"] = "not a tensor"
lightning_state["model.nested"] = {"inner": torch.ones(1)}
lightning_state["cond_stage_model.transformer.text_model.embeddings.position_ids"] = torch.arange(5).unsqueeze(0)
lightning = {
    "epoch": 6,
    "global_step": np.int64(470000),
    "pytorch-lightning_version": "1.4.2",
    "state_dict": lightning_state,
    "callbacks": {ModelCheckpoint: {"monitor": None, "best_model_score": None, "best_model_path": "",
                                    "current_score": np.float32(0.5)}},
    "optimizer_states": [{"state": {0: {"exp_avg": torch.randn(3, 3)}}, "param_groups": [{"lr": 1e-4, "betas": (0.9, 0.999)}]}],
    "lr_schedulers": [],
}
torch.save(lightning, out_dir / "lightning.ckpt")
(out_dir / "lightning.json").write_text(json.dumps({
    "tensors": expected(lightning_state), "skipped": ["model.note", "model.nested"],
}, indent=1) + "\n")


# --- Hostile and damaged files ---

pwned = f"/tmp/farm-pwned-{secrets.token_hex(6)}"
hostile = []


def case(name, code, fragment, key=None):
    hostile.append({"file": f"hostile/{name}", "code": code, "message": fragment, "key": key})


def ustr(text):
    raw = text.encode()
    return b"X" + struct.pack("<I", len(raw)) + raw


def short(text):
    raw = text.encode()
    return b"\x8c" + bytes([len(raw)]) + raw


def glob(module, name):
    return b"c" + module.encode() + b"\n" + name.encode() + b"\n"


def in_state_dict(value, proto=b"\x80\x02"):
    """A pickle of {"state_dict": {"w": <value>}} around raw opcodes."""
    return proto + b"}(" + ustr("state_dict") + b"}(" + ustr("w") + value + b"uu."


def tensor_ops(key, numel, size, stride, storage="FloatStorage", offset=0):
    ints = lambda values: b"(" + b"".join(b"J" + struct.pack("<i", v) for v in values) + b"t"
    return (glob("torch._utils", "_rebuild_tensor_v2") + b"((" + ustr("storage") + glob("torch", storage) + ustr(key)
            + ustr("cpu") + b"J" + struct.pack("<i", numel) + b"tQ" + b"J" + struct.pack("<i", offset)
            + ints(size) + ints(stride) + b"\x89" + glob("collections", "OrderedDict") + b")Rt" + b"R")


floats = struct.pack("<4f", 1, 2, 3, 4)
command = f"touch {pwned}"

torch_zip(hostile_dir / "os_system.ckpt", in_state_dict(glob("os", "system") + ustr(command) + b"\x85R"))
case("os_system.ckpt", "refusedGlobal", "refused global 'os.system'")


class Exploit:
    def __reduce__(self):
        import os
        return (os.system, (command,))


torch_zip(hostile_dir / "posix_system.ckpt", __import__("pickle").dumps({"state_dict": {"w": Exploit()}}, protocol=2))
case("posix_system.ckpt", "refusedGlobal", "refused global 'posix.system'")
torch_zip(hostile_dir / "builtins_eval.ckpt",
          in_state_dict(glob("builtins", "eval") + ustr(f"__import__('os').system('{command}')") + b"\x85R"))
case("builtins_eval.ckpt", "refusedGlobal", "refused global 'builtins.eval'")
torch_zip(hostile_dir / "subprocess_popen.ckpt",
          in_state_dict(glob("subprocess", "Popen") + b"](" + ustr("touch") + ustr(pwned) + b"e\x85R"))
case("subprocess_popen.ckpt", "refusedGlobal", "refused global 'subprocess.Popen'")
torch_zip(hostile_dir / "stack_global.ckpt",
          in_state_dict(short("posix") + short("system") + b"\x93" + ustr(command) + b"\x85R", proto=b"\x80\x04"))
case("stack_global.ckpt", "refusedGlobal", "refused global 'posix.system'")
torch_zip(hostile_dir / "inst_opcode.ckpt", b"(S'" + command.encode() + b"'\nios\nsystem\n.")
case("inst_opcode.ckpt", "refusedGlobal", "refused global 'os.system'")
torch_zip(hostile_dir / "nested_torch_load.ckpt",
          in_state_dict(glob("torch.storage", "_load_from_bytes") + b"C\x04abcd\x85R"))
case("nested_torch_load.ckpt", "refusedGlobal", "refused global 'torch.storage._load_from_bytes'")
torch_zip(hostile_dir / "getattr.ckpt", in_state_dict(glob("builtins", "getattr") + b"N" + ustr("x") + b"\x86R"))
case("getattr.ckpt", "refusedGlobal", "refused global 'builtins.getattr'")
torch_zip(hostile_dir / "missing_data.ckpt", in_state_dict(tensor_ops("7", 4, [4], [1])), {"0": floats})
case("missing_data.ckpt", "corruptArchive", "no entry archive/data/7")
good_pickle = dict(read_entries(out_dir / "good.ckpt"))["good/data.pkl"]
good_storages = {name.split("/")[-1]: data for name, data in read_entries(out_dir / "good.ckpt")
                 if name.startswith("good/data/")}
torch_zip(hostile_dir / "truncated_pickle.ckpt", good_pickle[:len(good_pickle) // 2], good_storages)
case("truncated_pickle.ckpt", "malformedPickle", "truncated")
torch_zip(hostile_dir / "no_stop.ckpt", b"\x80\x02}q\x00")
case("no_stop.ckpt", "malformedPickle", "without a STOP")
torch_zip(hostile_dir / "huge_binunicode.ckpt", b"\x80\x02X" + struct.pack("<I", 0xFFFFFFF0) + b"abc")
case("huge_binunicode.ckpt", "limitExceeded", "4294967280-byte string")
torch_zip(hostile_dir / "huge_binunicode8.ckpt", b"\x80\x04\x8d" + struct.pack("<Q", 1 << 62) + b"abc")
case("huge_binunicode8.ckpt", "limitExceeded", f"{1 << 62}-byte string")
torch_zip(hostile_dir / "binunicode_past_end.ckpt", b"\x80\x02X" + struct.pack("<I", 1000) + b"abc")
case("binunicode_past_end.ckpt", "malformedPickle", "runs past the end of the pickle")
torch_zip(hostile_dir / "deep_tuples.ckpt", b"\x80\x02N" + b"\x85" * 1000 + b".")
case("deep_tuples.ckpt", "limitExceeded", "tuples nested more than 64 deep")
torch_zip(hostile_dir / "deep_marks.ckpt", b"\x80\x02" + b"(" * 2000 + b"N.")
case("deep_marks.ckpt", "limitExceeded", "nested MARKs")
# Opcodes that make much from little: a memoized call repeated for 6 input bytes each.
torch_zip(hostile_dir / "encode_amplification.ckpt",
          b"\x80\x02" + glob("_codecs", "encode") + b"q\x00" + b"0" + ustr("a" * 20000) + ustr("latin1") + b"\x86q\x01"
          + b"0" + b"h\x00h\x01R0" * 3500 + b"N.")
case("encode_amplification.ckpt", "limitExceeded", "bytes made by _codecs.encode")
torch_zip(hostile_dir / "size_amplification.ckpt",
          b"\x80\x02" + glob("torch", "Size") + b"q\x00" + b"0" + b"(" + b"K\x01" * 1000 + b"t\x85q\x01" + b"0"
          + b"h\x00h\x01R0" * 4500 + b"N.")
case("size_amplification.ckpt", "limitExceeded", "items in containers")
torch_zip(hostile_dir / "memo_unset.ckpt", b"\x80\x02h\x05.")
case("memo_unset.ckpt", "malformedPickle", "memo entry 5 is read before it is written")
torch_zip(hostile_dir / "stack_underflow.ckpt", b"\x80\x02R.")
case("stack_underflow.ckpt", "malformedPickle", "stack is empty")
torch_zip(hostile_dir / "unknown_opcode.ckpt", b"\x80\x02\xff.")
case("unknown_opcode.ckpt", "malformedPickle", "unknown opcode 0xff")
torch_zip(hostile_dir / "complex_storage.ckpt", in_state_dict(tensor_ops("0", 2, [2], [1], "ComplexFloatStorage")),
          {"0": floats})
case("complex_storage.ckpt", "unsupportedContent", "torch.ComplexFloatStorage")
torch_zip(hostile_dir / "out_of_bounds.ckpt", in_state_dict(tensor_ops("0", 4, [100], [1])), {"0": floats})
case("out_of_bounds.ckpt", "invalidTensor", "reaches element 99 of a storage of 4", key="w")
torch_zip(hostile_dir / "negative_stride.ckpt", in_state_dict(tensor_ops("0", 4, [4], [-1], offset=3)), {"0": floats})
case("negative_stride.ckpt", "invalidTensor", "negative", key="w")
torch_zip(hostile_dir / "huge_expand.ckpt", in_state_dict(tensor_ops("0", 4, [1 << 20, 1 << 20], [0, 0])),
          {"0": floats})
case("huge_expand.ckpt", "limitExceeded", "size [1048576, 1048576]", key="w")
torch_zip(hostile_dir / "storage_size_lie.ckpt", in_state_dict(tensor_ops("0", 1000, [4], [1])), {"0": floats})
case("storage_size_lie.ckpt", "corruptArchive", "claims 1000 FloatStorage elements but its entry holds 16 bytes")
torch_zip(hostile_dir / "big_endian.ckpt", in_state_dict(tensor_ops("0", 4, [4], [1])), {"0": floats},
          byteorder=b"big")
case("big_endian.ckpt", "unsupportedContent", "'big' byte order")
torch_zip(hostile_dir / "not_a_dict.ckpt", b"\x80\x02]q\x00.")
case("not_a_dict.ckpt", "unsupportedContent", "holds a list, not a dict")

# Damaged zips, from good.ckpt's bytes.
good_bytes = (out_dir / "good.ckpt").read_bytes()
eocd = len(good_bytes) - 22
assert struct.unpack_from("<I", good_bytes, eocd)[0] == 0x06054B50
directory_offset = struct.unpack_from("<I", good_bytes, eocd + 16)[0]


def patched(offset, fmt, value, source=good_bytes):
    data = bytearray(source)
    struct.pack_into(fmt, data, offset, value)
    return bytes(data)


(hostile_dir / "truncated.ckpt").write_bytes(good_bytes[:len(good_bytes) * 6 // 10])
case("truncated.ckpt", "notZipArchive", "no zip end-of-central-directory record")
(hostile_dir / "empty.ckpt").write_bytes(b"")
case("empty.ckpt", "notZipArchive", "too short to be a zip archive")
(hostile_dir / "text.ckpt").write_bytes(b"version https://git-lfs.github.com/spec/v1\noid sha256:0\nsize 4265380512\n")
case("text.ckpt", "notZipArchive", "no zip end-of-central-directory record")
torch.save(good_state, hostile_dir / "legacy.ckpt", _use_new_zipfile_serialization=False)
case("legacy.ckpt", "notZipArchive", "legacy (pre-1.6)")
# torch writes a zip64 end record (and its locator) before the classic one, even for small files.
zip64_record = good_bytes.rindex(b"PK\x06\x06")
(hostile_dir / "bad_eocd_offset.ckpt").write_bytes(
    patched(zip64_record + 48, "<Q", 0xFFFFFFF0, patched(eocd + 16, "<I", 0xFFFFFFFF)))
case("bad_eocd_offset.ckpt", "corruptArchive", "central directory offset (4294967280) exceeds the file")
(hostile_dir / "bad_eocd_count.ckpt").write_bytes(
    patched(zip64_record + 32, "<Q", 1000, patched(eocd + 10, "<H", 0xFFFF)))
case("bad_eocd_count.ckpt", "corruptArchive", "claims 1000 entries")
(hostile_dir / "eocd_records_disagree.ckpt").write_bytes(patched(eocd + 16, "<I", directory_offset + 46))
case("eocd_records_disagree.ckpt", "corruptArchive", "end-of-central-directory records disagree")
# The same damage to an archive with only the classic record.
write_zip(hostile_dir / "plain_eocd_offset.ckpt", read_entries(out_dir / "good.ckpt"))
plain = (hostile_dir / "plain_eocd_offset.ckpt").read_bytes()
(hostile_dir / "plain_eocd_offset.ckpt").write_bytes(patched(len(plain) - 22 + 16, "<I", len(plain), plain))
case("plain_eocd_offset.ckpt", "corruptArchive", "lies outside the file")
(hostile_dir / "entry_offset_past_end.ckpt").write_bytes(patched(directory_offset + 42, "<I", 0x7FFFFFF0))
case("entry_offset_past_end.ckpt", "corruptArchive", "claims offset 2147483632")
data_record = good_bytes.index(b"good/data/0", directory_offset) - 46
assert struct.unpack_from("<I", good_bytes, data_record)[0] == 0x02014B50
(hostile_dir / "entry_size_past_end.ckpt").write_bytes(
    patched(data_record + 24, "<I", 0x7FFF0000, patched(data_record + 20, "<I", 0x7FFF0000)))
case("entry_size_past_end.ckpt", "corruptArchive", "good/data/0")
(hostile_dir / "local_header_mismatch.ckpt").write_bytes(patched(30, "<B", ord("X")))
case("local_header_mismatch.ckpt", "corruptArchive", "local header naming another file")
zip64_bytes = (out_dir / "good_zip64.ckpt").read_bytes()
(hostile_dir / "zip64_locator_past_end.ckpt").write_bytes(
    patched(len(zip64_bytes) - 22 - 20 + 8, "<Q", 1 << 40, zip64_bytes))
case("zip64_locator_past_end.ckpt", "corruptArchive", "zip64 end-of-central-directory offset")
data_entry = dict(read_entries(out_dir / "good.ckpt"))["good/data/0"]
flipped = bytearray(good_bytes)
flipped[good_bytes.index(data_entry) + 1] ^= 0x40
(hostile_dir / "bad_crc.ckpt").write_bytes(bytes(flipped))
# Storage 0 is the first tensor pickled: the first key of the state dict.
case("bad_crc.ckpt", "checksumMismatch", "entry 'good/data/0' does not match its CRC-32", key=next(iter(good_state)))
write_zip(hostile_dir / "deflated.ckpt", read_entries(out_dir / "good.ckpt"), deflate={"good/data.pkl"})
case("deflated.ckpt", "unsupportedArchive", "deflate-compressed")
entries = read_entries(out_dir / "good.ckpt")
write_zip(hostile_dir / "duplicate_entry.ckpt", entries + [entries[0]])
case("duplicate_entry.ckpt", "corruptArchive", "lists 'good/data.pkl' twice")
write_zip(hostile_dir / "no_pickle.ckpt", [(n, d) for n, d in entries if not n.endswith("data.pkl")])
case("no_pickle.ckpt", "unsupportedContent", "no <name>/data.pkl")

# Deep list chains and cycles are harmless (the unpickler keeps containers flat, by index):
# this one loads, with the chain and the cycle skipped. Memo slot 0 always holds the outermost list.
chain = bytearray(b"]q\x00")
for level in range(1, 5000):
    chain += b"]h\x00aq\x000"
chain += b"0" + b"h\x00"
cycle = b"]q\x01h\x01a"
torch_zip(hostile_dir / "deep_lists.ckpt",
          b"\x80\x02}(" + ustr("state_dict") + b"}(" + ustr("chain") + bytes(chain) + ustr("cycle") + cycle + b"uu.")

# Repeated keys: the last value wins, as in Python ({"w": "text", "v": tensor [1, 2, 3, 4]}).
torch_zip(hostile_dir / "duplicate_keys.ckpt",
          b"\x80\x02}(" + ustr("state_dict") + b"}(" + ustr("w") + tensor_ops("0", 4, [4], [1]) + ustr("w") + ustr("text")
          + ustr("v") + ustr("x") + ustr("v") + tensor_ops("0", 4, [4], [1]) + b"uu.", {"0": floats})

(out_dir / "hostile.json").write_text(json.dumps({"pwned": pwned, "cases": hostile}, indent=1) + "\n")
total = sum(path.stat().st_size for path in out_dir.rglob("*") if path.is_file())
print(f"wrote {len(list(out_dir.rglob('*.ckpt')))} checkpoints ({total} bytes) to {out_dir}")
