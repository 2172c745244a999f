"""The live price source's 15-minute cache holds across runs: answers are kept in the price store."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from flowc.cli import main
from flowc.providers.mithril.api.client import ApiClient
from flowc.providers.mithril.domain.answer_cache import CachedAnswers
from flowc.providers.mithril.domain.sources import LIVE_TTL_S
from flowc.providers.mithril.domain.store import PriceStore
from test_mithril_api import AVAILABILITY, INSTANCE_TYPES, KEY, FakeMithril, Reply, mithril  # noqa: F401


@pytest.fixture
def market(mithril: FakeMithril, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> FakeMithril:  # noqa: F811
    mithril.route("/v2/spot/availability", Reply(AVAILABILITY))
    mithril.route("/v2/instance-types", Reply(INSTANCE_TYPES))
    mithril.route("/v2/pricing/history", Reply({"series": [], "complete": True}))
    monkeypatch.setenv("MITHRIL_API_URL", mithril.url)
    monkeypatch.setenv("MITHRIL_API_KEY", KEY)
    monkeypatch.setenv("FLOWC_DATA_DIR", str(tmp_path / "data"))
    return mithril


def spot_prices() -> list[dict]:
    result = CliRunner().invoke(main, ["pricing", "--spot", "--source", "live", "--format", "json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.output)["prices"]


def test_a_second_run_within_the_lifetime_asks_the_api_nothing(market: FakeMithril) -> None:
    first = spot_prices()
    asked = sum(market.hits.values())
    assert market.hits["/v2/spot/availability"] == 1 and asked >= 2
    assert spot_prices() == first, "the kept answers give the same prices"
    assert sum(market.hits.values()) == asked, "the second run was served from the store"


def test_answers_expire_and_keep_the_time_they_were_fetched(market: FakeMithril, tmp_path: Path) -> None:
    now = [1_000_000.0]
    store = PriceStore(tmp_path / "answers.sqlite3")
    with ApiClient(market.url, KEY) as client:
        cached = CachedAnswers(client, store, LIVE_TTL_S, clock=lambda: now[0])
        cached.get_json("/v2/spot/availability")
        now[0] += LIVE_TTL_S - 1
        cached.get_json("/v2/spot/availability")
        assert market.hits["/v2/spot/availability"] == 1 and cached.fetched_at == 1_000_000.0
        now[0] += 2
        cached.get_json("/v2/spot/availability")
        assert market.hits["/v2/spot/availability"] == 2 and cached.fetched_at == now[0]


def test_a_history_window_that_moved_with_the_clock_is_the_same_question(market: FakeMithril,
                                                                           tmp_path: Path) -> None:
    store = PriceStore(tmp_path / "answers.sqlite3")
    with ApiClient(market.url, KEY) as client:
        cached = CachedAnswers(client, store, LIVE_TTL_S)
        for end in ("2026-01-01T00:00:00Z", "2026-01-01T00:05:00Z"):
            cached.get_json("/v2/pricing/history", {"instance_types": "it_1", "region": "r", "end_time": end,
                                                    "start_time": "2025-12-31T00:00:00Z"})
        cached.get_json("/v2/pricing/history", {"instance_types": "it_2", "region": "r"})
    assert market.hits["/v2/pricing/history"] == 2
