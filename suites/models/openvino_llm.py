"""OpenVINO GenAI folders (``openvino-genai-dir``) built from the slm suite's fp32 weights.

optimum-intel is not used: its wheels would downgrade ``transformers`` and replace the CPU
``torch`` of this environment. The export uses OpenVINO's own APIs instead:

1. the Hugging Face folder of :func:`wattbench.suites.models.gguf_llm.build_hf_dir` (the GGUF
   dequantised to fp32) is traced with ``openvino.convert_model`` through a wrapper whose
   inputs are ``input_ids, attention_mask, position_ids, beam_idx`` and the flat KV cache;
2. ``apply_make_stateful_transformation`` turns the cache inputs/outputs into states, each
   initialised with an empty ``[batch, kv_heads, 0, head_dim]`` tensor (the layout
   ``openvino_genai.LLMPipeline`` expects);
3. ``openvino_tokenizers.convert_tokenizer`` writes the tokenizer/detokenizer IRs;
4. ``int8``/``int4`` compress the weights with ``nncf.compress_weights`` (INT8_ASYM, or
   INT4_ASYM with group size 32 on every layer: group size 64 left SmolLM2-135M answering
   nothing, its first token EOS); ``fp32`` is the plain export.

Folders are cached as deterministic tars keyed by the GGUF's sha256, the precision and the
openvino/nncf versions (:func:`wattbench.suites.models.gguf_llm.cached_dir`).
"""

from __future__ import annotations

import importlib
import importlib.metadata
import shutil
from pathlib import Path
from types import ModuleType
from typing import Any

from wattbench.core.cache import ModelCache
from wattbench.core.errors import ConfigError, UnavailableError

INSTALL_HINT = "pip install 'wattbench[openvino-genai]' (openvino-genai, openvino-tokenizers, nncf)"

#: Bump when the export below changes what it writes (part of the cache key).
EXPORT_VERSION = "2"

PRECISIONS = ("fp32", "int8", "int4")
#: Weights per int4 scale/zero point (see step 4 above).
INT4_GROUP_SIZE = 32

_COPIED = (
    "config.json",
    "generation_config.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "chat_template.jinja",
)


def _import(name: str) -> ModuleType:
    try:
        return importlib.import_module(name)
    except ImportError as exc:
        raise UnavailableError(f"{name} is not installed: {INSTALL_HINT}") from exc


def _version(dist: str) -> str:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return "none"


def _wrapper(torch: ModuleType, tf: ModuleType, model: Any, layers: int) -> Any:
    """The model as a function of flat tensors (traceable): cache in, logits + cache out."""
    config = model.config

    class _Flat(torch.nn.Module):  # type: ignore[name-defined]
        def __init__(self) -> None:
            super().__init__()
            self.m = model

        def forward(
            self, input_ids: Any, attention_mask: Any, position_ids: Any, beam_idx: Any, *past: Any
        ) -> tuple[Any, ...]:
            cache = tf.DynamicCache(config=config)
            for i in range(layers):
                layer = cache.layers[i]
                k = past[2 * i].index_select(0, beam_idx)
                v = past[2 * i + 1].index_select(0, beam_idx)
                # set the layer directly: update() would concatenate onto an empty tensor
                # of unknown rank, which the OpenVINO frontend cannot convert
                layer.lazy_initialization(k, v)
                layer.keys = k
                layer.values = v
            out = self.m(
                input_ids=input_ids,
                attention_mask=attention_mask,
                position_ids=position_ids,
                past_key_values=cache,
                use_cache=True,
            )
            res = [out.logits]
            for i in range(layers):
                res += [out.past_key_values.layers[i].keys, out.past_key_values.layers[i].values]
            return tuple(res)

    return _Flat()


def export_fp32(hf: Path, out: Path) -> None:
    """A stateful fp32 OpenVINO IR + tokenizer IRs of the Hugging Face folder ``hf``."""
    import numpy as np

    torch = _import("torch")
    tf = _import("transformers")
    ov = _import("openvino")
    ot = _import("openvino_tokenizers")
    op = _import("openvino.opset13")
    offline = _import("openvino._offline_transformations")
    tf.utils.logging.set_verbosity_error()
    model = tf.AutoModelForCausalLM.from_pretrained(str(hf), dtype=torch.float32).eval()
    cfg = model.config
    layers = int(cfg.num_hidden_layers)
    heads = int(cfg.num_key_value_heads)
    head_dim = int(getattr(cfg, "head_dim", None) or cfg.hidden_size // cfg.num_attention_heads)
    past_len, seq = 2, 3
    example = (
        torch.ones(1, seq, dtype=torch.long),
        torch.ones(1, past_len + seq, dtype=torch.long),
        torch.arange(past_len, past_len + seq).unsqueeze(0),
        torch.zeros(1, dtype=torch.int32),
        *[torch.zeros(1, heads, past_len, head_dim) for _ in range(2 * layers)],
    )
    with torch.no_grad():
        om = ov.convert_model(_wrapper(torch, tf, model, layers), example_input=example)
    kv = [f"{i}.{n}" for i in range(layers) for n in ("key", "value")]
    in_names = ["input_ids", "attention_mask", "position_ids", "beam_idx"]
    in_names += [f"past_key_values.{s}" for s in kv]
    out_names = ["logits"] + [f"present.{s}" for s in kv]
    for port, name in zip(om.inputs, in_names, strict=True):
        port.get_tensor().set_names({name})
    for port, name in zip(om.outputs, out_names, strict=True):
        port.get_tensor().set_names({name})
    shapes = {}
    for port, name in zip(om.inputs, in_names, strict=True):
        if name.startswith("past_"):
            shapes[port] = ov.PartialShape([-1, heads, -1, head_dim])
        else:
            shapes[port] = ov.PartialShape([-1] * port.get_partial_shape().rank.get_length())
    om.reshape(shapes)
    offline.apply_make_stateful_transformation(
        om, {f"past_key_values.{s}": f"present.{s}" for s in kv}
    )
    batch = op.gather(
        op.shape_of(om.input("input_ids"), output_type="i64"), op.constant([0]), op.constant(0)
    )
    for node in om.get_ops():
        if node.get_type_name() == "ReadValue":
            dims = [batch] + [
                op.constant(np.array([d], dtype=np.int64)) for d in (heads, 0, head_dim)
            ]
            zero = op.constant(0.0, dtype=node.get_output_element_type(0))
            node.set_arguments([op.broadcast(zero, op.concat(dims, axis=0))])
    om.validate_nodes_and_infer_types()
    ov.save_model(om, str(out / "openvino_model.xml"), compress_to_fp16=False)
    tok, detok = ot.convert_tokenizer(
        tf.AutoTokenizer.from_pretrained(str(hf)), with_detokenizer=True
    )
    ov.save_model(tok, str(out / "openvino_tokenizer.xml"))
    ov.save_model(detok, str(out / "openvino_detokenizer.xml"))
    for name in _COPIED:
        if (hf / name).is_file():
            shutil.copy(hf / name, out / name)


def compress(src: Path, out: Path, precision: str) -> None:
    """``src`` (an fp32 folder) with its weights compressed by NNCF to ``precision``."""
    ov = _import("openvino")
    nncf = _import("nncf")
    if precision == "int8":
        kw: dict[str, Any] = {"mode": nncf.CompressWeightsMode.INT8_ASYM}
    elif precision == "int4":
        kw = {
            "mode": nncf.CompressWeightsMode.INT4_ASYM,
            "group_size": INT4_GROUP_SIZE,
            "ratio": 1.0,
        }
    else:
        raise ConfigError(f"openvino-genai: no weight compression {precision!r}: use int8 or int4")
    for f in src.iterdir():
        if f.is_file() and not f.name.startswith("openvino_model."):
            shutil.copy(f, out / f.name)
    model = ov.Core().read_model(str(src / "openvino_model.xml"))
    ov.save_model(
        nncf.compress_weights(model, **kw), str(out / "openvino_model.xml"), compress_to_fp16=False
    )


def openvino_dir(cache: ModelCache, hf: Path, sha: str, precision: str) -> tuple[Path, str]:
    """The cached OpenVINO GenAI folder of ``hf`` (from the GGUF of sha256 ``sha``)."""
    from wattbench.suites.models import gguf_llm

    if precision not in PRECISIONS:
        raise ConfigError(
            f"openvino-genai builds {', '.join(PRECISIONS)}: drop --precision {precision}"
        )
    ver = f"ov{_version('openvino')}-nncf{_version('nncf')}-exp{EXPORT_VERSION}"
    fp32_key = f"slm-gguf-openvino-fp32-{sha[:24]}-{ver}"
    fp32, fp32_sha = gguf_llm.cached_dir(cache, fp32_key, lambda o: export_fp32(hf, o))
    if precision == "fp32":
        return fp32, fp32_sha
    key = f"slm-gguf-openvino-{precision}-{sha[:24]}-{ver}"
    return gguf_llm.cached_dir(cache, key, lambda o: compress(fp32, o, precision))
