"""lab.finetune on the tiny random Llama: learning, masking, padding, atomic checkpoints, exact resume, Ray."""

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
import warnings

import pytest

from lab.errors import ConfigError, DataError, LabError
from lab.finetune import FinetuneConfig, FinetuneResult, finetune, finetune_ray, load_finetuned
from lab.finetune.checkpoint import list_checkpoints, remove_partial, write_checkpoint
from lab.finetune.data import IGNORE_INDEX, collate, encode_examples, pad_groups, stream_slice

FACTS = [("What is the capital of France?", "Paris"), ("What colour is the sky?", "Blue"),
         ("How many legs has a dog?", "Four"), ("Who wrote Hamlet?", "Shakespeare"),
         ("What is two plus two?", "Four"), ("Where does the sun rise?", "In the east")]
DATA = [{"messages": [{"role": "system", "content": "Answer briefly."}, {"role": "user", "content": q}],
         "answer": a} for q, a in FACTS]
EVAL = DATA[:2]
TINY = "tiny-random-llama"


def cfg(**kw):
    base = {"model": TINY, "max_steps": 12, "batch_size": 4, "eval_every": 4, "save_every": 4, "threads": 1,
            "learning_rate": 1e-2}
    return FinetuneConfig(**{**base, **kw})


@pytest.fixture(scope="module")
def tokenizer():
    from lab.models import load_causal_lm

    return load_causal_lm(TINY)[1]


# ------------------------------------------------------------------ config
def test_config_validates_loudly():
    with pytest.raises(ConfigError, match="method"):
        FinetuneConfig(method="prefix")
    with pytest.raises(ConfigError, match=r"(?s)batch_size.*lora_dropout"):
        FinetuneConfig(batch_size=0, lora_dropout=1.5)
    with pytest.raises(ConfigError, match="epochs: unknown key"):
        FinetuneConfig.from_dict({"epochs": 3})
    c = FinetuneConfig.from_dict({"target_modules": ["q_proj"], "max_steps": 5})
    assert c.target_modules == ("q_proj",) and hash(c)  # lists from YAML become tuples; still frozen/hashable


# ------------------------------------------------------------------ data
def test_labels_mask_prompt_and_padding(tokenizer):
    enc, stats = encode_examples(DATA, tokenizer, max_length=256)
    assert stats.truncated == 0 and len(enc) == len(DATA)
    batch = collate(enc[:4], tokenizer.pad_token_id)
    lengths = [len(e.input_ids) for e in enc[:4]]
    assert len(set(lengths)) > 1  # the batch really mixes lengths
    assert batch["input_ids"].shape == (4, max(lengths))  # dynamic padding: the longest of this batch
    for row, e in enumerate(enc[:4]):
        ids, labels, mask = batch["input_ids"][row], batch["labels"][row], batch["attention_mask"][row]
        n = len(e.input_ids)
        assert (labels[:e.n_prompt] == IGNORE_INDEX).all()  # prompt: no loss
        assert (labels[n:] == IGNORE_INDEX).all() and (ids[n:] == tokenizer.pad_token_id).all()  # right padding
        assert mask[:n].all() and not mask[n:].any()
        answer = labels[e.n_prompt:n]
        assert (answer == ids[e.n_prompt:n]).all()
        assert tokenizer.decode(answer) == DATA[row]["answer"] + tokenizer.eos_token
        # the prompt is exactly the chat template with the generation prompt
        prompt = tokenizer.apply_chat_template(DATA[row]["messages"], add_generation_prompt=True, tokenize=False)
        assert tokenizer.decode(ids[:e.n_prompt]) == prompt


def test_loss_on_labelled_positions_equals_loss_over_all_positions(tokenizer):
    """_loss_sum projects only the positions that predict an answer token: same sum and same
    gradients as the plain cross-entropy over every position with ignore_index, for the bare
    model and through a peft LoRA wrapper; a forward() without logits_to_keep takes the plain path."""
    import torch
    import torch.nn.functional as F
    from peft import LoraConfig, get_peft_model

    from lab.finetune.train import _MASK_OK, _loss_sum
    from lab.models import load_causal_lm

    enc, _ = encode_examples(DATA, tokenizer, max_length=256)
    batch = collate(enc[:4], tokenizer.pad_token_id)
    torch.manual_seed(0)
    base, _ = load_causal_lm(TINY)
    lora = get_peft_model(load_causal_lm(TINY)[0], LoraConfig(r=4, target_modules=["q_proj", "v_proj"]))

    def plain(model):
        logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
        return F.cross_entropy(logits[:, :-1].flatten(0, 1).float(), batch["labels"][:, 1:].flatten(),
                               ignore_index=IGNORE_INDEX, reduction="sum")

    class NoKeep(torch.nn.Module):      # an architecture whose forward() has no logits_to_keep
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, input_ids, attention_mask, use_cache=False):
            return self.inner(input_ids=input_ids, attention_mask=attention_mask, use_cache=use_cache)

    class PositionsOnly(NoKeep):        # transformers before boolean masks: a tensor indexes positions
        def forward(self, input_ids, attention_mask, use_cache=False, logits_to_keep=0):
            if isinstance(logits_to_keep, torch.Tensor):
                torch.zeros(3, 3)[:, logits_to_keep, :]   # what such a release does with a 2-D mask: IndexError
            return self.inner(input_ids=input_ids, attention_mask=attention_mask, use_cache=use_cache)

    seen = []   # what reaches the vocabulary projection: only the labelled positions on the fast path
    base.lm_head.register_forward_hook(lambda mod, args, out: seen.append(tuple(args[0].shape)))
    _loss_sum(base, batch)
    assert seen == [(int((batch["labels"][:, 1:] != IGNORE_INDEX).sum()), base.config.hidden_size)]
    for model in (base, lora, NoKeep(base), PositionsOnly(base), PositionsOnly(base)):   # twice: remembered
        grads = []
        for fn in (plain, lambda m: _loss_sum(m, batch)):
            model.zero_grad()
            loss = fn(model)
            loss.backward()
            grads.append((float(loss), [p.grad.clone() for p in model.parameters() if p.requires_grad]))
        (want, want_g), (got, got_g) = grads
        assert got == pytest.approx(want, rel=1e-5) and want > 0
        assert all(torch.allclose(a, b, atol=1e-5) for a, b in zip(want_g, got_g, strict=True))
    assert _MASK_OK[type(base)] is True and _MASK_OK[PositionsOnly] is False and _MASK_OK[NoKeep] is False


def test_pad_groups_partition_bound_padding_and_keep_the_loss_and_gradients(tokenizer):
    """A micro-batch split by pad_groups: every example once, each group within its padding
    bound, and the summed loss and gradients over the groups equal the one padded batch's."""
    import torch

    from lab.finetune.data import Encoded
    from lab.finetune.train import _loss_sum
    from lab.models import load_causal_lm

    def fake(n: int) -> Encoded:
        return Encoded(input_ids=list(range(n)), n_prompt=n - 1)

    groups = pad_groups([fake(n) for n in (300, 1000, 310, 950, 600)])
    assert sorted(len(e.input_ids) for g in groups for e in g) == [300, 310, 600, 950, 1000]
    for g in groups:
        width = max(len(e.input_ids) for e in g)
        assert width * len(g) - sum(len(e.input_ids) for e in g) <= 0.1 * width * len(g)
    assert [len(g) for g in groups] == [2, 1, 2]       # 1000+950 | 600 | 310+300
    assert pad_groups([]) == [] and len(pad_groups([fake(5)] * 4)) == 1

    enc, _ = encode_examples(DATA, tokenizer, max_length=256)
    assert len({len(e.input_ids) for e in enc}) > 1     # lengths differ: there is padding to skip
    torch.manual_seed(0)
    model, _ = load_causal_lm(TINY)
    results = []
    for parts in ([list(enc)], pad_groups(enc, max_waste=0.0)):
        model.zero_grad()
        total = 0.0
        for part in parts:
            s = _loss_sum(model, collate(part, tokenizer.pad_token_id))
            s.backward()
            total += float(s)
        results.append((total, [p.grad.clone() for p in model.parameters()]))
    (want, want_g), (got, got_g) = results
    assert len(pad_groups(enc, max_waste=0.0)) > 1
    assert got == pytest.approx(want, rel=1e-5)
    assert all(torch.allclose(a, b, atol=1e-5) for a, b in zip(want_g, got_g, strict=True))


def test_long_examples_are_truncated_counted_and_warned(tokenizer):
    n_prompt = encode_examples(DATA[:1], tokenizer, 256)[0][0].n_prompt
    with pytest.warns(UserWarning, match="1 of 1 examples .* cut"):
        enc, stats = encode_examples(DATA[:1], tokenizer, max_length=n_prompt + 1)
    assert stats.truncated == 1 and stats.dropped == 0 and enc[0].n_answer == 1
    with pytest.warns(UserWarning), pytest.raises(DataError, match="no example has an answer token"):
        encode_examples(DATA[:1], tokenizer, max_length=n_prompt)
    with pytest.raises(DataError, match=r"train\[1\].*answer"):
        encode_examples([DATA[0], {"messages": DATA[0]["messages"], "answer": ""}], tokenizer, 256)


def test_example_stream_is_seeded_and_epoch_wise():
    s = stream_slice(6, seed=3, start=0, count=18)
    assert [sorted(s[i:i + 6]) for i in (0, 6, 12)] == [list(range(6))] * 3  # each epoch a permutation
    assert s[:6] != s[6:12]  # reshuffled per epoch
    assert stream_slice(6, 3, 4, 4) == s[4:8]  # a batch straddling two epochs, from any position
    assert stream_slice(6, 4, 0, 6) != s[:6]


# ------------------------------------------------------------------ training
@pytest.mark.parametrize("method,lr,targets", [
    ("full", 3e-3, None),
    # LoRA on the tiny RANDOM model also adapts lm_head: its frozen random head and norm keep every
    # logit within about +-1.3, so q/v adapters alone cannot take the loss far below ln(vocab).
    ("lora", 1e-2, ("q_proj", "v_proj", "lm_head")),
])
def test_training_reduces_loss_and_final_dir_generates(tmp_path, method, lr, targets):
    extra = {"target_modules": targets} if targets else {}
    c = cfg(method=method, max_steps=20, learning_rate=lr, eval_every=10, save_every=5, **extra)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # peft's notes on the tied lm_head
        r = finetune(DATA, EVAL, c, tmp_path, progress=False)
    losses = [v for _, v in r.train_loss]
    assert r.steps == 20 and len(losses) == 20 and r.resumed_from_step is None and not r.reused
    assert losses[-1] < losses[0] - 1.5, losses
    assert [s for s, _ in r.eval_loss] == [0, 10, 20] and r.eval_loss[-1][1] < r.eval_loss[0][1] - 1.0
    assert r.trainable_params == r.total_params if method == "full" else 0 < r.trainable_params < r.total_params
    assert r.tokens_seen > 20 * 4 * 20 and r.peak_rss_mb > 50 and r.wall_s > 0
    # only the newest two checkpoints are kept, and no temp folder is left
    assert [s for s, _ in list_checkpoints(tmp_path)] == [15, 20]
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == ["step-15", "step-20"]
    files = {p.name for p in r.final_dir.iterdir()}
    meta = json.loads((r.final_dir / "lab_finetune.json").read_text())
    if method == "full":
        assert {"config.json", "model.safetensors", "tokenizer.json"} <= files
    else:
        assert {"adapter_config.json", "adapter_model.safetensors", "tokenizer.json"} <= files
        assert "model.safetensors" not in files and meta["base_model"]["spec"] == TINY
    assert meta["config"]["learning_rate"] == lr and meta["kind"] == ("model" if method == "full" else "adapter")
    # final dir loads and generates: the memorised answer of a training question
    model, tok = load_finetuned(r.final_dir)
    enc = tok.apply_chat_template([DATA[0]["messages"]], add_generation_prompt=True, return_tensors="pt",
                                  return_dict=True)
    out = model.generate(**enc, max_new_tokens=4, do_sample=False)
    assert out.shape[1] > enc["input_ids"].shape[1]
    # the same config again: returned from final/ without training
    again = finetune(DATA, EVAL, c, tmp_path, progress=False)
    assert again.reused and again.train_loss == r.train_loss and again.final_dir == r.final_dir


def test_other_config_in_out_dir_is_refused_unless_resume_false(tmp_path):
    finetune(DATA, EVAL, cfg(method="full", max_steps=2, save_every=1), tmp_path, progress=False)
    with pytest.raises(LabError, match=r"learning_rate: 0.01 != 0.02.*resume=False"):
        finetune(DATA, EVAL, cfg(method="full", max_steps=2, learning_rate=2e-2), tmp_path, progress=False)
    r = finetune(DATA, EVAL, cfg(method="full", max_steps=2, learning_rate=2e-2, save_every=0), tmp_path,
                 resume=False, progress=False)
    assert not r.reused and r.steps == 2 and list_checkpoints(tmp_path) == []  # old checkpoints deleted
    # only max_steps longer: goes on from the newest checkpoint (with a warning on the LR horizon)
    longer = cfg(method="full", max_steps=4, learning_rate=2e-2, save_every=2)
    finetune(DATA, EVAL, cfg(method="full", max_steps=2, learning_rate=2e-2, save_every=2), tmp_path / "x",
             progress=False)
    with pytest.warns(UserWarning, match="horizon"):
        r = finetune(DATA, EVAL, longer, tmp_path / "x", progress=False)
    assert r.resumed_from_step == 2 and r.steps == 4 and not r.reused


def test_checkpoint_writes_are_atomic(tmp_path):
    def good(step):
        def write(tmp):
            (tmp / "model.pt").write_bytes(b"w")
            (tmp / "state.json").write_text(json.dumps({"step": step}))
        return write

    def crash(tmp):
        (tmp / "model.pt").write_bytes(b"half")
        raise KeyboardInterrupt  # killed between two files

    for step in (1, 2, 3):
        write_checkpoint(tmp_path, step, good(step), keep=2)
    with pytest.raises(KeyboardInterrupt):
        write_checkpoint(tmp_path, 4, crash, keep=2)
    ck = tmp_path / "checkpoints"
    assert sorted(p.name for p in ck.iterdir()) == ["step-2", "step-3"]  # no step-4, no temp left, 1 pruned
    # what a kill -9 mid-write leaves: a temp folder, never a step-N folder; it is ignored, then swept
    (ck / ".tmp-step-4-abc").mkdir()
    (ck / "step-9").mkdir()  # a foreign folder without state.json is not a checkpoint
    assert [s for s, _ in list_checkpoints(tmp_path)] == [2, 3]
    assert [p.name for p in remove_partial(tmp_path)] == [".tmp-step-4-abc"]


KILLED_RUN = textwrap.dedent("""
    import json, sys, time
    from torch.optim.optimizer import register_optimizer_step_post_hook
    from lab.finetune import FinetuneConfig, finetune

    calls = []
    def stall(opt, args, kwargs):  # hangs inside optimizer step 9, after checkpoint step-8 is complete
        calls.append(1)
        if len(calls) == 9:
            time.sleep(120)
    register_optimizer_step_post_hook(stall)
    data, cfg, out = json.load(open(sys.argv[1]))
    finetune(data["train"], data["eval"], FinetuneConfig.from_dict(cfg), out, progress=False)
""")


def test_resume_after_kill_matches_uninterrupted_run(tmp_path):
    # LoRA with dropout: the curve depends on the RNG stream, so equality proves it was restored too
    c = cfg(method="lora", max_steps=12, save_every=4, eval_every=4, lora_dropout=0.1)
    killed, straight = tmp_path / "killed", tmp_path / "straight"
    args = tmp_path / "args.json"
    args.write_text(json.dumps([{"train": DATA, "eval": EVAL}, c.to_dict(), str(killed)]))
    script = tmp_path / "run.py"
    script.write_text(KILLED_RUN)
    log = tmp_path / "stderr.txt"  # a file, not a pipe: a full pipe would block the child before step 8
    with open(log, "wb") as err:
        proc = subprocess.Popen([sys.executable, str(script), str(args)], stdout=subprocess.DEVNULL, stderr=err,
                                start_new_session=True)
    deadline = time.time() + 90
    try:
        while not (killed / "checkpoints" / "step-8" / "state.json").exists():
            assert proc.poll() is None, log.read_text()[-3000:]
            assert time.time() < deadline, "no step-8 checkpoint within 90 s"
            time.sleep(0.05)
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    assert proc.returncode == -signal.SIGKILL and not (killed / "final").exists()
    assert [s for s, _ in list_checkpoints(killed)] == [4, 8]

    resumed = finetune(DATA, EVAL, c, killed, progress=False)
    full = finetune(DATA, EVAL, c, straight, progress=False)
    assert resumed.resumed_from_step == 8 and resumed.steps == 12 and full.steps == 12
    assert [s for s, _ in resumed.train_loss] == list(range(1, 13))  # steps 1..8 come from the checkpoint
    for (s1, a), (s2, b) in zip(resumed.train_loss, full.train_loss, strict=True):
        assert s1 == s2 and a == pytest.approx(b, abs=1e-5)
    for (s1, a), (s2, b) in zip(resumed.eval_loss, full.eval_loss, strict=True):
        assert s1 == s2 and a == pytest.approx(b, abs=1e-5)
    assert resumed.tokens_seen == full.tokens_seen
    # the cost counts the killed run's training up to its step-8 checkpoint too
    saved = json.loads((killed / "checkpoints" / "step-8" / "state.json").read_text()) \
        if (killed / "checkpoints" / "step-8").exists() else None
    assert resumed.resumed_s > 0 and resumed.wall_s > resumed.resumed_s and full.resumed_s == 0
    if saved is not None:
        assert resumed.resumed_s == saved["train_s"]


def test_qlora_on_cpu_is_refused_with_reason(tmp_path):
    for call in (lambda: finetune(DATA, EVAL, cfg(method="qlora", device="cpu"), tmp_path, progress=False),
                 lambda: finetune_ray(DATA, EVAL, cfg(method="qlora"), tmp_path, use_gpu=False)):
        with pytest.raises(LabError, match=r"(?s)needs a CUDA GPU.*silently incorrect.*method: lora"):
            call()
    assert not (tmp_path / "checkpoints").exists()


def test_empty_train_set_is_refused(tmp_path):
    with pytest.raises(DataError, match="train: no examples"):
        finetune([], EVAL, cfg(), tmp_path, progress=False)


def test_log_to_mlflow(tmp_path, isolated_mlflow):
    import mlflow

    c = cfg(method="full", max_steps=3, eval_every=1, save_every=0)
    r = finetune(DATA, EVAL, c, tmp_path, progress=False, log_to_mlflow=True)
    run = mlflow.search_runs(experiment_names=["lab"], output_format="list")[0]
    client = mlflow.MlflowClient()
    assert [m.step for m in client.get_metric_history(run.info.run_id, "train_loss")] == [1, 2, 3]
    assert [m.value for m in client.get_metric_history(run.info.run_id, "eval_loss")] == \
        [v for _, v in r.eval_loss]
    assert run.data.params["finetune.method"] == "full" and run.data.metrics["finetune.tokens_seen"] == r.tokens_seen
    assert "finetune_final/lab_finetune.json" in {f.path for f in client.list_artifacts(run.info.run_id,
                                                                                        "finetune_final")}


@pytest.mark.slow
@pytest.mark.e2e
def test_finetune_ray_two_workers_matches_one_process(tmp_path):
    c = cfg(method="full", max_steps=4, learning_rate=3e-3, eval_every=2, save_every=2)
    r = finetune_ray(DATA, EVAL, c, tmp_path / "ray", num_workers=2)
    assert isinstance(r, FinetuneResult) and r.steps == 4 and r.final_dir.is_dir()
    assert [s for s, _ in list_checkpoints(tmp_path / "ray")] == [2, 4]
    # Each worker takes half of every batch; the step's loss is normalised over both workers' tokens,
    # so the curve equals one process's up to float summation order.
    one = finetune(DATA, EVAL, c, tmp_path / "one", progress=False)
    assert r.tokens_seen == one.tokens_seen
    for (s1, a), (s2, b) in zip(r.train_loss, one.train_loss, strict=True):
        assert s1 == s2 and a == pytest.approx(b, abs=1e-5)
    load_finetuned(r.final_dir)
