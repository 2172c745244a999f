"""A hypothesis state machine over submit, edit, cancel, lost answers and allocation, against the fake Mithril API.

Invariants after every step: at most one live bid per task; a dry run sends nothing but GETs; after a
submission that went through, each task's live bid is what the build wants.
"""

from __future__ import annotations

import functools
import json

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from fake_mithril import FakeMithril
from flowc.model.options import BuildOptions
from flowc.pipeline import compile_source
from flowc.providers.mithril.api.client import ApiClient
from flowc.providers.mithril.api.errors import MithrilApiError
from flowc.providers.mithril.domain.submission import BuiltBid
from flowc.providers.mithril.domain.submit import SubmitFailed
from flowc.providers.mithril.provider import MithrilCompute

TASKS = ("train", "eval")
DOCUMENT = """\
mithril: {{project: ml-team}}
tasks:
  train:
    instance_type: a100
    region: us-central1-b
    max_price_per_hour: {train_price}
    command: python train.py {train_flag}
    ssh_keys: [alice-laptop]
  eval:
    instance_type: a100
    region: us-central2-a
    max_price_per_hour: {eval_price}
    command: python eval.py {eval_flag}
    ssh_keys: [alice-laptop]
"""


@functools.cache
def built(train_price: int, train_flag: str, eval_price: int, eval_flag: str) -> tuple[BuiltBid, ...]:
    """The bids of one version of the document (compiled once per version)."""
    text = DOCUMENT.format(train_price=train_price, train_flag=train_flag, eval_price=eval_price,
                           eval_flag=eval_flag)
    result = compile_source(text, "job.yaml", until="artifacts", options=BuildOptions(targets=("mithril",)))
    bodies = {a.path: json.loads(a.content) for a in result.artifacts or () if a.path.endswith(".json")}
    return tuple(BuiltBid(name, bodies[f"mithril/{name}.json"]) for name in TASKS)


class Submissions(RuleBasedStateMachine):
    """One fake Mithril per run; the document changes between steps."""

    @initialize()
    def start(self) -> None:
        self.fake = FakeMithril()
        client = ApiClient(self.fake.url, self.fake.key, deadline_s=2.0, retries=1, backoff_s=0.01,
                           sleep=lambda _s: None)
        self.compute = MithrilCompute(client)
        self.compute.bids._sleep = lambda _s: None
        self.project = self.compute.resolve_project("ml-team")
        self.version = (2, "", 2, "")
        self.settled = False  # the last submission went through, so live bids match the document

    def teardown(self) -> None:
        """Stop the server and the client."""
        if hasattr(self, "fake"):
            self.compute.close()
            self.fake.close()

    @rule(train_price=st.sampled_from([2, 3]), eval_price=st.sampled_from([2, 3]),
          train_flag=st.sampled_from(["", "--resume"]), eval_flag=st.sampled_from(["", "--fast"]))
    def edit(self, train_price: int, eval_price: int, train_flag: str, eval_flag: str) -> None:
        self.version = (train_price, train_flag, eval_price, eval_flag)
        self.settled = False

    @rule(kind=st.sampled_from(["500", "503", "apply_then_500", "drop", "429"]),
          method=st.sampled_from(["POST", "PATCH", "DELETE"]))
    def lose_the_next_answer(self, kind: str, method: str) -> None:
        self.fake.fail_next(method, "/v2/spot/bids", kind)

    @rule()
    def allocate(self) -> None:
        self.fake.run()

    @rule(task=st.sampled_from(TASKS))
    def cancel(self, task: str) -> None:
        try:
            self.compute.cancel_task(self.project, task)
        except MithrilApiError:
            pass  # an injected failure; the next step sees what the server holds
        self.settled = False

    @rule(replace=st.booleans(), dry_run=st.booleans())
    def submit(self, replace: bool, dry_run: bool) -> None:
        wanted = [self.compute.prepare(b, self.project) for b in built(*self.version)]
        sent = len(self.fake.requests)
        try:
            actions = self.compute.plan_submission(wanted, self.project, replace)
        except MithrilApiError:
            return
        if dry_run or any(a.kind == "refuse" for a in actions):
            assert all(r.method == "GET" for r in self.fake.requests[sent:]), "planning sends only GETs"
            return
        try:
            self.compute.submit_task(actions)
        except SubmitFailed:
            self.settled = False
            return
        self.settled = True

    @invariant()
    def at_most_one_live_bid_per_task(self) -> None:
        if hasattr(self, "fake"):
            for task in TASKS:
                assert len(self.fake.live_bids(name=task)) <= 1, self.fake.live_bids(name=task)

    @precondition(lambda self: getattr(self, "settled", False))
    @invariant()
    def live_bids_are_what_the_document_wants(self) -> None:
        train_price, _, eval_price, _ = self.version
        prices = {b["name"]: b["limit_price"] for b in self.fake.live_bids()}
        assert prices == {"train": f"${train_price:.2f}", "eval": f"${eval_price:.2f}"}


Submissions.TestCase.settings = settings(max_examples=25, stateful_step_count=12, deadline=None,
                                         suppress_health_check=[HealthCheck.too_slow])
TestSubmissions = Submissions.TestCase
