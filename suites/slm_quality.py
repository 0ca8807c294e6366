"""The slm suites' answer quality: the question set, the perplexity text, the cached reference
results and the judgement against them.

A run of a real model answers the fixed question set (:data:`QUESTIONS_FILE`: chat template,
greedy, :data:`QA_MAX_TOKENS` tokens, normalised match) and scores the perplexity of a
public-domain passage (:data:`PASSAGE_FILE`); :func:`judge` holds both against the fp32
reference's within the tolerance for the run's precision. The tiny random model is judged
on greedy-token agreement only (:func:`check_agreement`).
:class:`~wattbench.suites.slm.SlmSuite` wires these into the runner's quality hooks.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.metadata
import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from wattbench.core.adapter import ModelArtifact, Precision
from wattbench.core.cache import ModelCache
from wattbench.core.errors import ModelError
from wattbench.core.generative import GenerativeSession
from wattbench.core.suite import InputSet, QualityResult

DATA_DIR = Path(__file__).resolve().with_name("data")
#: The versioned question set (a new set is a new file and a new suite version).
QUESTIONS_FILE = DATA_DIR / "slm_questions_v1.txt"
QUESTION_SET = "v1"
#: The perplexity text: the opening of Pride and Prejudice (Jane Austen, 1813; public domain).
PASSAGE_FILE = DATA_DIR / "slm_perplexity_pride_and_prejudice.txt"
#: Tokens generated per question (greedy); the reply is cut at a special token or line break.
QA_MAX_TOKENS = 16


# -- the question set ------------------------------------------------------------------------


@dataclass(frozen=True)
class Question:
    """One question of the set: its id, its text and the accepted answers."""

    id: str
    text: str
    answers: tuple[str, ...]


def load_questions(path: Path = QUESTIONS_FILE) -> list[Question]:
    """The question set: ``id TAB question TAB answer|answer...`` lines, ``#`` comments."""
    out: list[Question] = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip() or line.startswith("#"):
            continue
        parts = line.split("\t")
        if len(parts) != 3 or not all(p.strip() for p in parts):
            raise ModelError(f"{path}:{n}: expected 'id<TAB>question<TAB>answers'")
        answers = tuple(a.strip() for a in parts[2].split("|") if a.strip())
        out.append(Question(parts[0].strip(), parts[1].strip(), answers))
    return out


def load_passage(path: Path = PASSAGE_FILE) -> str:
    """The perplexity text (leading ``#`` lines are provenance, not text)."""
    lines = path.read_text(encoding="utf-8").splitlines()
    while lines and lines[0].startswith("#"):
        lines.pop(0)
    return "\n".join(lines).strip() + "\n"


_ARTICLES = re.compile(r"\b(a|an|the)\b")


def normalise(text: str) -> str:
    """Lower case, punctuation → spaces (``-`` too), articles dropped, spaces collapsed."""
    t = re.sub(r"[^\w\s]", " ", text.lower().replace("_", " "))
    return " ".join(_ARTICLES.sub(" ", t).split())


def score_reply(reply: str, answers: Sequence[str]) -> tuple[bool, bool]:
    """``(answered, exact)``: an accepted answer appears in the normalised reply as a
    whole-word sequence / the normalised reply equals one."""
    r = normalise(reply)
    padded = f" {r} "
    norm = [normalise(a) for a in answers]
    return any(a and f" {a} " in padded for a in norm), any(a == r for a in norm)


# -- task texts ------------------------------------------------------------------------------


def chat_prompt(folder: Path, question: str) -> str:
    """``question`` as one user turn in the chat template of the model ``folder``, assistant
    to answer."""
    template, specials = _chat_template(folder)
    if template is None:
        raise ModelError(
            f"{folder} has no chat template (chat_template.jinja or tokenizer_config.json): "
            f"the slm question set needs a chat model"
        )
    jinja2 = importlib.import_module("jinja2")
    sandbox = importlib.import_module("jinja2.sandbox")

    def raise_exception(message: str) -> None:
        raise ModelError(f"the chat template refused the question: {message}")

    env = sandbox.ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
    env.globals["raise_exception"] = raise_exception
    try:
        return str(
            env.from_string(template).render(
                messages=[{"role": "user", "content": question}],
                add_generation_prompt=True,
                **specials,
            )
        )
    except jinja2.TemplateError as exc:
        raise ModelError(f"cannot render the chat template of {folder}: {exc}") from exc


def task_quality(
    session: GenerativeSession, folder: Path, tok: Any, questions: Sequence[Question]
) -> dict[str, Any]:
    """The score on ``questions`` and the passage perplexity of ``session`` (greedy).

    ``folder`` holds the chat template, ``tok`` is the model's ``tokenizers.Tokenizer``.
    Perplexity needs the session's optional ``token_logprobs(ids)``; without it it is left out.
    """
    special = {i for i, t in tok.get_added_tokens_decoder().items() if t.special}
    answered = exact = 0
    replies: dict[str, str] = {}
    for q in questions:
        ids = tok.encode(chat_prompt(folder, q.text), add_special_tokens=False).ids
        out = session.generate(np.asarray(ids, dtype=np.int64), QA_MAX_TOKENS).tolist()
        cut = next((k for k, t in enumerate(out) if t in special), len(out))
        reply = tok.decode(out[:cut], skip_special_tokens=True).strip().split("\n")[0]
        ok, ex = score_reply(reply, q.answers)
        answered += ok
        exact += ex
        replies[q.id] = reply
    n = len(questions)
    task: dict[str, Any] = {
        "qa_score": answered / n,
        "qa_exact": exact / n,
        "qa_correct": answered,
        "qa_questions": n,
        "replies": replies,
    }
    scorer = getattr(session, "token_logprobs", None)
    if callable(scorer):
        ids = np.asarray(tok.encode(load_passage(), add_special_tokens=False).ids, np.int64)
        lp = np.asarray(scorer(ids), dtype=np.float64)
        task["perplexity"] = float(np.exp(-lp.mean()))
        task["perplexity_tokens"] = int(lp.size)
    return task


def _chat_template(folder: Path) -> tuple[str | None, dict[str, str]]:
    """The folder's chat template and the special-token strings it may use."""
    specials: dict[str, str] = {}
    template: str | None = None
    cfg_file = folder / "tokenizer_config.json"
    if cfg_file.is_file():
        try:
            cfg = json.loads(cfg_file.read_text(encoding="utf-8"))
        except ValueError:
            cfg = {}
        for k in ("bos_token", "eos_token", "pad_token", "unk_token"):
            v = cfg.get(k)
            if isinstance(v, dict):
                v = v.get("content")
            if isinstance(v, str):
                specials[k] = v
        if isinstance(cfg.get("chat_template"), str):
            template = cfg["chat_template"]
    jinja = folder / "chat_template.jinja"
    if jinja.is_file():
        template = jinja.read_text(encoding="utf-8")
    return template, specials


# -- the reference's cached results ----------------------------------------------------------


def reference_key(
    ref_sha256: str,
    prompts: Sequence[np.ndarray],
    *,
    version: str,
    quality_tokens: int,
    questions: int,
) -> str:
    """The cache key of the reference's tokens and task metrics: its model, the prompts,
    question set and passage, the lengths, the suite ``version`` and the library versions."""
    texts = hashlib.sha256()
    for p in prompts:
        texts.update(np.asarray(p, dtype=np.int64).tobytes())
    texts.update(QUESTIONS_FILE.read_bytes())
    texts.update(PASSAGE_FILE.read_bytes())
    versions = "|".join(_version(d) for d in ("transformers", "torch", "tokenizers"))
    d = _digest(
        ref_sha256,
        texts.hexdigest(),
        f"{quality_tokens}/{questions}/{QA_MAX_TOKENS}",
        versions,
    )
    return f"slm-reference-{version}-{d}"


def reference_results(
    ref: ModelArtifact,
    prompts: Sequence[np.ndarray],
    cache: ModelCache,
    open_reference: Callable[[ModelArtifact], GenerativeSession],
    *,
    tokens: int,
    key: str | None,
    task_quality: Callable[[GenerativeSession, ModelArtifact], dict[str, Any]] | None,
) -> tuple[list[np.ndarray], dict[str, Any] | None]:
    """The reference ``ref``'s greedy ``tokens`` per prompt and, given ``task_quality``, its
    task metrics: read from ``cache`` under ``key`` if there, else computed on a session
    from ``open_reference`` and stored there (``key`` None: neither read nor stored)."""
    cached = _load_json(cache, key) if key else None
    if cached is not None:
        return [np.asarray(t, dtype=np.int64) for t in cached["tokens"]], cached["task"]
    task: dict[str, Any] | None = None
    session = open_reference(ref)
    try:
        out = [session.generate(p, tokens) for p in prompts]
        if task_quality is not None:
            task = task_quality(session, ref)
    finally:
        session.close()
    if key is not None:
        _store_json(cache, key, {"tokens": [t.tolist() for t in out], "task": task})
    return out, task


def _load_json(cache: ModelCache, key: str) -> dict[str, Any] | None:
    sha = cache.recipe(key)
    path = cache.lookup(sha, ".json") if sha else None
    if path is None:
        return None
    try:
        data = json.loads(path.read_text())
    except ValueError:
        return None
    return data if isinstance(data, dict) else None


def _store_json(cache: ModelCache, key: str, data: Mapping[str, Any]) -> None:
    _, sha = cache.put_bytes(json.dumps(data, sort_keys=True).encode(), ".json")
    cache.remember_recipe(key, sha)


def _digest(*parts: str) -> str:
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:24]


def _version(dist: str) -> str:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return "none"


# -- judgement -------------------------------------------------------------------------------


def check_agreement(
    outputs: Sequence[np.ndarray],
    inputs: InputSet,
    reference: Sequence[np.ndarray] | None,
    *,
    tokens: int,
    precision: Precision,
    tiny: bool,
    tiny_targets: Mapping[str, float],
    note: str,
) -> QualityResult:
    """Greedy-token agreement of ``outputs`` with ``reference`` over the first ``tokens``.

    For the tiny model (``tiny``) the share of prompts whose leading tokens all agree must
    reach ``tiny_targets[precision]``; for a real model the agreement is reported only.
    Without a reference, checks only that the right number of tokens came out (``note``
    says why there is none).
    """
    n = tokens
    toks = [np.asarray(o, dtype=np.int64).reshape(-1)[:n] for o in outputs]
    problems = [
        f"{inputs.names[i]} gave {t.size} tokens, expected {n}"
        for i, t in enumerate(toks)
        if t.size != n
    ]
    if reference is None:
        return QualityResult(
            passed=not problems,
            kind="sanity",
            metrics={"prompts": float(len(toks))},
            detail="; ".join(problems)
            or f"{n} tokens per prompt generated (agreement not assessed: {note})",
        )
    refs = [np.asarray(r, dtype=np.int64).reshape(-1)[:n] for r in reference]
    prefix = []
    for t, r in zip(toks, refs, strict=True):
        same = t[: r.size] == r[: t.size]
        prefix.append(int(np.argmin(same)) if not same.all() else int(same.size))
    agree = sum(p == n for p in prefix) / len(prefix)
    metrics = {
        "prompt_agreement": agree,
        "mean_matching_prefix": float(np.mean(prefix)),
        "min_matching_prefix": float(min(prefix)),
        "tokens_compared": float(n),
    }
    if not tiny:  # reported; the task metrics decide
        return QualityResult(
            passed=not problems,
            kind="agreement",
            metrics=metrics,
            detail="; ".join(problems)
            or f"{agree * 100:.0f}% of {len(prefix)} prompts match the reference's first "
            f"{n} greedy tokens (reported, not judged)",
        )
    need = float(tiny_targets.get(precision, 1.0))
    if agree < need:
        worst = int(np.argmin(prefix))
        problems.append(
            f"{agree * 100:.0f}% of prompts match the reference's first {n} greedy tokens "
            f"(need {need * 100:.0f}% at {precision}); {inputs.names[worst]} diverges at "
            f"token {prefix[worst]}"
        )
    return QualityResult(
        passed=not problems,
        kind="agreement",
        metrics=metrics,
        detail="; ".join(problems)
        or f"{agree * 100:.0f}% of {len(prefix)} prompts match the transformers fp32 "
        f"reference's first {n} greedy tokens",
    )


def judge(
    quality: QualityResult,
    task: Mapping[str, Any],
    reference: Mapping[str, Any] | None,
    precision: Precision,
    *,
    targets: Mapping[str, Any],
    note: str,
) -> QualityResult:
    """Merge the task metrics into ``quality`` and apply the tolerance ``targets`` for
    ``precision`` (``note`` says why a missing ``reference`` is missing)."""
    metrics = dict(quality.metrics)
    metrics.update(
        {
            "qa_score": float(task["qa_score"]),
            "qa_exact": float(task["qa_exact"]),
            "qa_questions": float(task["qa_questions"]),
        }
    )
    if "perplexity" in task:
        metrics["perplexity"] = float(task["perplexity"])
    problems = [] if quality.passed else [quality.detail]
    summary = f"questions {task['qa_correct']}/{task['qa_questions']} answered" + (
        f", perplexity {task['perplexity']:.3f}" if "perplexity" in task else ""
    )
    if reference is None:
        notes = f"tolerance not assessed: {note or 'no reference'}"
    else:
        tol = targets.get(precision, targets["fp32"])
        drop = float(reference["qa_score"]) - float(task["qa_score"])
        metrics["reference_qa_score"] = float(reference["qa_score"])
        metrics["qa_score_drop"] = drop
        if drop > tol["qa_score_drop"] + 1e-9:
            problems.append(
                f"question score {task['qa_score']:.3f} is {drop:.3f} below the fp32 "
                f"reference's {reference['qa_score']:.3f} (at most {tol['qa_score_drop']} at "
                f"{precision})"
            )
        if "perplexity" in task and "perplexity" in reference:
            ratio = float(task["perplexity"]) / float(reference["perplexity"])
            metrics["reference_perplexity"] = float(reference["perplexity"])
            metrics["perplexity_ratio"] = ratio
            if ratio > tol["perplexity_ratio"]:
                problems.append(
                    f"perplexity {task['perplexity']:.3f} is {ratio:.3f}x the fp32 reference's "
                    f"{reference['perplexity']:.3f} (at most {tol['perplexity_ratio']}x at "
                    f"{precision})"
                )
        elif "perplexity" not in task:
            problems.append(
                "this runtime cannot score the perplexity text (no token_logprobs): the "
                "tolerance cannot be checked"
            )
        notes = (
            f"reference (transformers fp32, dequantised weights): "
            f"{reference['qa_correct']}/{reference['qa_questions']} answered"
            + (f", perplexity {reference['perplexity']:.3f}" if "perplexity" in reference else "")
        )
    detail = "; ".join([*problems, summary, notes] if problems else [summary, notes])
    return QualityResult(passed=not problems, kind="accuracy", metrics=metrics, detail=detail)
