"""``flowc submit``, ``status`` and ``cancel`` end to end against a fake Mithril API that is a real HTTP server."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from fake_mithril import FakeMithril
from flowc.cli import main

JOB = """\
mithril: {{project: ml-team}}
tasks:
  train:
    instance_type: 8xh100
    num_instances: 2
    region: us-central2-a
    max_price_per_hour: {price}
    command: {command}
    image: pytorch/pytorch:2.2.2
    ssh_keys: [alice-laptop]
    volumes:
      - {{name: ckpts, mount_path: /ckpts, interface: file}}
      - {{name: scratch, size_gb: 100, mount_path: /scratch, interface: file}}
  eval:
    instance_type: a100
    region: us-central1-b
    max_price_per_hour: 2
    command: python eval.py
    ssh_keys: [alice-laptop]
"""


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[FakeMithril]:
    with FakeMithril() as server:
        monkeypatch.setenv("MITHRIL_API_URL", server.url)
        monkeypatch.setenv("MITHRIL_API_KEY", server.key)
        monkeypatch.setenv("MITHRIL_API_DEADLINE_S", "1.5")
        monkeypatch.setenv("FLOWC_DATA_DIR", str(tmp_path / "data"))
        monkeypatch.delenv("MITHRIL_PROJECT", raising=False)
        monkeypatch.setattr("flowc.cli.tasks.POLL_S", 0.05)
        yield server


def document(tmp: Path, price: float = 24, command: str = "python train.py") -> str:
    path = tmp / "job.yaml"
    path.write_text(JOB.format(price=price, command=command))
    return str(path)


def flowc(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, list(args))
    assert "Traceback" not in result.output, result.output
    return result.exit_code, result.output


def writes(fake: FakeMithril) -> list[tuple[str, str]]:
    return [(r.method, r.path) for r in fake.requests if r.method != "GET"]


def test_dry_run_shows_the_plan_and_sends_nothing(fake: FakeMithril, tmp_path: Path) -> None:
    code, out = flowc("submit", document(tmp_path), "--dry-run")
    assert code == 0, out
    assert "create" in out and "$48.00" in out and "creates volumes: scratch" in out and "nothing was sent" in out
    assert "$11.20, 6 free" in out, "the market next to each bid"
    assert writes(fake) == []


def test_a_bid_that_would_wait_says_why(fake: FakeMithril, tmp_path: Path) -> None:
    code, out = flowc("submit", document(tmp_path, price=9), "--dry-run")
    assert code == 0
    assert "train: the market is at $11.20/hour in us-central2-a, above its limit $9.00" in out


def test_submitting_twice_makes_one_bid_per_task_and_one_volume(fake: FakeMithril, tmp_path: Path) -> None:
    source = document(tmp_path)
    assert flowc("submit", source, "--yes")[0] == 0
    code, out = flowc("submit", source, "--yes")
    assert code == 0 and out.count("unchanged") == 2
    assert sorted(b["name"] for b in fake.live_bids()) == ["eval", "train"]
    assert writes(fake) == [("POST", "/v2/spot/bids"), ("POST", "/v2/volumes"), ("POST", "/v2/spot/bids")]
    assert fake.key not in json.dumps([r.json for r in fake.requests]), "the key is in no body or script"
    train = next(b for b in fake.live_bids() if b["name"] == "train")
    assert train["instance_type"] == fake.instance_type_fid("h100-80gb.sxm.8x", "us-central2-a")
    assert train["launch_specification"]["ssh_keys"] == [fake.ssh_key_fid("ml-team", "alice-laptop")]
    scratch = [fid for fid, v in fake.volumes.items() if v["name"] == "scratch"]
    assert len(scratch) == 1 and fake.volumes[scratch[0]]["capacity_gb"] == 100
    assert sorted(train["launch_specification"]["volumes"]) == sorted([fake.volume_fid("ml-team", "ckpts"),
                                                                       scratch[0]])


def test_a_build_output_folder_submits_the_same_bids(fake: FakeMithril, tmp_path: Path) -> None:
    assert flowc("build", document(tmp_path), "-o", str(tmp_path / "out"))[0] == 0
    assert flowc("submit", str(tmp_path / "out"), "--yes", "--task", "eval")[0] == 0
    assert [b["name"] for b in fake.live_bids()] == ["eval"]
    assert flowc("submit", document(tmp_path), "--yes", "--dry-run")[1].count("unchanged") == 1


@pytest.mark.parametrize("kind", ["apply_then_hang", "apply_then_500", "drop"])
def test_a_create_whose_answer_is_lost_still_makes_one_bid(fake: FakeMithril, tmp_path: Path, kind: str) -> None:
    fake.fail_next("POST", "/v2/spot/bids", kind, hang_s=3.0)
    code, out = flowc("submit", document(tmp_path), "--yes", "--task", "eval")
    assert code == 0, out
    assert len(fake.live_bids(name="eval")) == 1
    posts = [r for r in fake.requests if r.method == "POST" and r.path == "/v2/spot/bids"]
    assert len({r.headers["idempotency-key"] for r in posts}) == 1, "every attempt carries the same key"
    lists = [r for r in fake.requests if r.method == "GET" and r.path == "/v2/spot/bids"]
    assert lists, "after an unknown outcome the bids are listed by name before any new attempt"


def test_a_price_change_is_one_patch(fake: FakeMithril, tmp_path: Path) -> None:
    assert flowc("submit", document(tmp_path), "--yes")[0] == 0
    before = len(writes(fake))
    code, out = flowc("submit", document(tmp_path, price=30), "--yes")
    assert code == 0 and "update" in out and "$24.00 -> $30.00" in out
    assert writes(fake)[before:] == [("PATCH", f"/v2/spot/bids/{fake.live_bids(name='train')[0]['fid']}")]
    assert fake.live_bids(name="train")[0]["limit_price"] == "$30.00"


def test_another_change_is_refused_then_replaced_with_replace(fake: FakeMithril, tmp_path: Path) -> None:
    assert flowc("submit", document(tmp_path), "--yes")[0] == 0
    old = fake.live_bids(name="train")[0]["fid"]
    before = len(writes(fake))
    code, out = flowc("submit", document(tmp_path, command="python train.py --resume"), "--yes")
    assert code == 1 and "differs from its live bid" in out and "startup_script" in out and "--replace" in out
    assert len(writes(fake)) == before, "a refusal sends nothing"
    code, out = flowc("submit", document(tmp_path, command="python train.py --resume"), "--yes", "--replace")
    assert code == 0, out
    assert writes(fake)[before:] == [("DELETE", f"/v2/spot/bids/{old}"), ("POST", "/v2/spot/bids")]
    assert [b["fid"] for b in fake.live_bids(name="train")] != [old] and len(fake.live_bids(name="train")) == 1


def test_cancel_twice_is_success(fake: FakeMithril, tmp_path: Path) -> None:
    source = document(tmp_path)
    assert flowc("submit", source, "--yes")[0] == 0
    code, out = flowc("cancel", source, "--yes")
    assert code == 0 and out.count("cancelled bid") == 2 and fake.live_bids() == []
    code, out = flowc("cancel", source, "--yes")
    assert code == 0 and out.count("already gone") == 2
    cancelled = {b["fid"] for b in fake.bids.values()}
    assert flowc("submit", source, "--yes")[0] == 0, "the same bids again after a cancel are new bids"
    assert len(fake.live_bids()) == 2 and not {b["fid"] for b in fake.live_bids()} & cancelled


def test_status_shows_states_instances_and_prices(fake: FakeMithril, tmp_path: Path) -> None:
    source = document(tmp_path)
    assert flowc("submit", source, "--yes", "--task", "train")[0] == 0
    fake.run(ssh_destination=["10.1.0.5:22", "10.1.0.6:22"])
    code, out = flowc("status", source, "--format", "json")
    assert code == 0, out
    rows = {row["task"]: row for row in json.loads(out)}
    assert rows["eval"] == {"task": "eval", "bid": None, "state": "not submitted"}
    train = rows["train"]
    assert (train["state"], train["bid_status"], train["limit_price"], train["spot_price"]) == (
        "running", "Allocated", 24.0, 11.2)
    assert [i["ssh"] for i in train["instances"]] == ["10.1.0.5:22", "10.1.0.6:22"]
    assert all(i["status"] == "STATUS_RUNNING" and i["private_ip"] for i in train["instances"])
    code, table = flowc("status", source)
    assert code == 0 and "running" in table and "not submitted" in table
    code, everything = flowc("status", "--all", "--project", "ml-team", "--format", "json")
    assert code == 0 and [r["task"] for r in json.loads(everything)] == ["train"]


def test_wait_follows_the_bids_until_they_run(fake: FakeMithril, tmp_path: Path) -> None:
    fake.auto_advance(1)
    code, out = flowc("submit", document(tmp_path), "--yes", "--wait", "running", "--timeout", "20")
    assert code == 0, out
    assert "train: running" in out and "eval: running" in out


def test_wait_times_out_with_the_last_state(fake: FakeMithril, tmp_path: Path) -> None:
    code, out = flowc("submit", document(tmp_path), "--yes", "--task", "eval", "--wait", "allocated",
                      "--timeout", "0.3")
    assert code == 1 and "timed out waiting for allocated (eval: pending)" in out
    assert len(fake.live_bids()) == 1, "the bid stays placed"


def test_a_422_is_reported_at_the_document_line(fake: FakeMithril, tmp_path: Path) -> None:
    detail = [{"loc": ["body", "launch_specification", "ssh_keys", 0], "msg": "key revoked", "type": "value_error"}]
    fake.fail_next("POST", "/v2/spot/bids", "422", detail=detail)
    code, out = flowc("submit", document(tmp_path), "--yes", "--task", "eval")
    assert code == 1
    assert f"error: {tmp_path / 'job.yaml'}:19:16: " in out and "ssh_keys.0: key revoked" in out
    assert "submitted: none; failed: eval; not sent: none" in out


def test_a_failure_half_way_says_what_was_sent(fake: FakeMithril, tmp_path: Path) -> None:
    fake.fail_next("POST", "/v2/spot/bids", "403_quota", times=1)
    fake.fail_next("POST", "/v2/spot/bids", "403_quota", times=1)
    code, out = flowc("submit", document(tmp_path), "--yes")
    assert code == 1 and "Quota exceeded" in out and "app.mithril.ai/instances/quotas" in out
    assert "submitted: none; failed: eval; not sent: train" in out
    assert fake.live_bids() == []


def test_spending_without_a_terminal_needs_yes(fake: FakeMithril, tmp_path: Path) -> None:
    code, out = flowc("submit", document(tmp_path))
    assert code == 1 and "--yes" in out and writes(fake) == []
    code, out = flowc("cancel", document(tmp_path))
    assert code == 1 and "--yes" in out


@pytest.mark.parametrize(("setting", "expected"), [
    ({"MITHRIL_API_KEY": None}, "no Mithril API key"),
    ({"MITHRIL_API_KEY": "fkey_wrong"}, "rejected the credentials"),
    ({"MITHRIL_API_URL": "http://127.0.0.1:9"}, "mithril api"),
    ({"MITHRIL_API_DEADLINE_S": "soon"}, "MITHRIL_API_DEADLINE_S"),
])
def test_account_and_network_problems_are_one_line_errors(fake: FakeMithril, tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch, setting: dict,
                                                          expected: str) -> None:
    for name, value in setting.items():
        if value is None:
            monkeypatch.delenv(name)
        else:
            monkeypatch.setenv(name, value)
    code, out = flowc("submit", document(tmp_path), "--yes")
    assert code == 1 and expected.lower() in out.lower(), out
    assert fake.key not in out and "fkey_wrong" not in out


def test_no_project_anywhere_is_an_error(fake: FakeMithril, tmp_path: Path) -> None:
    path = tmp_path / "job.yaml"
    path.write_text(JOB.format(price=24, command="x").replace("mithril: {project: ml-team}\n", ""))
    code, out = flowc("submit", str(path), "--yes")
    assert code == 1 and "no Mithril project" in out
    assert flowc("submit", str(path), "--yes", "--dry-run", "--project", "ml-team")[0] == 0
