"""Pricing domain, local store, sources and the ``flowc pricing`` command (no network)."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime, timedelta

import pytest
from click.testing import CliRunner

from flowc.cli import main
from flowc.providers.mithril.api import endpoints
from flowc.providers.mithril.domain.pricing import (
    TREND_THRESHOLD,
    PriceDataPoint,
    PriceHistory,
    compute_statistics,
    recommend_limit_price,
    trend_of,
)
from flowc.providers.mithril.domain.sources import LocalSource, SampleSource, choose_source
from flowc.providers.mithril.domain.store import PriceStore, StoreError
from flowc.providers.mithril.provider import MithrilProvider

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def at(hours: float) -> datetime:
    return T0 + timedelta(hours=hours)


@pytest.fixture(autouse=True)
def data_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("FLOWC_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.delenv("MITHRIL_API_KEY", raising=False)
    return tmp_path / "data"


def spiky() -> list[PriceDataPoint]:
    """A price that held 23 h, then a spike sampled 50 times in the last hour."""
    return [PriceDataPoint(at(0), 10.0)] + [PriceDataPoint(at(23 + i / 50), 50.0) for i in range(50)]


def test_duration_weighting_ignores_sampling_density() -> None:
    stats = compute_statistics(spiky(), end=at(24))
    assert stats.avg == pytest.approx((10 * 23 + 50) / 24)
    assert stats.median == 10.0
    assert stats.p95 == 10.0  # the spike holds 1/24 of the time, under 5%
    assert stats.tiers[0.98] == 50.0
    assert stats.min == 10.0 and stats.max == 50.0
    unweighted = sum(p.price for p in spiky()) / len(spiky())
    assert unweighted > 45 and stats.avg < 12


def test_weighted_std_dev() -> None:
    stats = compute_statistics([PriceDataPoint(at(0), 1.0), PriceDataPoint(at(1), 3.0)], end=at(2))
    assert stats.avg == pytest.approx(2.0)
    assert stats.volatility == pytest.approx(1.0)


def test_order_does_not_matter() -> None:
    points = spiky()
    assert compute_statistics(points[::-1], end=at(24)) == compute_statistics(points, end=at(24))


def test_single_point_and_empty() -> None:
    assert compute_statistics([]) is None
    stats = compute_statistics([PriceDataPoint(at(0), 4.0)])
    assert stats.avg == stats.median == stats.p95 == 4.0


@pytest.mark.parametrize(("new", "expected"), [(10.0 * (1 + TREND_THRESHOLD * 0.9), "stable"),
                                               (10.0 * (1 + TREND_THRESHOLD * 1.1), "up"),
                                               (10.0 * (1 - TREND_THRESHOLD * 1.1), "down"),
                                               (10.0 * (1 - TREND_THRESHOLD * 0.9), "stable")])
def test_trend_threshold(new: float, expected: str) -> None:
    # the price an hour before the last observation is the reference, not the first price of the series
    points = [PriceDataPoint(at(0), 99.0), PriceDataPoint(at(1), 10.0), PriceDataPoint(at(2.5), new)]
    assert trend_of(points) == expected


def test_uptime_and_tiers() -> None:
    # 1.0 for 3 h, 2.0 for 1 h, 4.0 for 1 h
    points = [PriceDataPoint(at(0), 1.0), PriceDataPoint(at(3), 2.0), PriceDataPoint(at(4), 4.0)]
    stats = compute_statistics(points, end=at(5))
    assert stats.uptime_at(1.0) == pytest.approx(0.6)
    assert stats.uptime_at(2.0) == pytest.approx(0.8)
    assert stats.uptime_at(0.5) == 0.0
    assert stats.uptime_at(4.0) == 1.0
    assert stats.tiers == {0.25: 1.0, 0.5: 1.0, 0.75: 2.0, 0.98: 4.0}
    for target, limit in stats.tiers.items():
        assert stats.uptime_at(limit) >= target


def test_week_over_week_and_seasonality() -> None:
    points = [PriceDataPoint(at(h), 10.0 if h < 24 * 5 else 11.0) for h in range(0, 24 * 9)]
    stats = compute_statistics(points, end=at(24 * 9))
    assert stats.week_over_week == pytest.approx(0.1)
    assert set(stats.hour_of_day) == set(range(24))
    assert set(stats.weekday) == set(range(7))
    short = compute_statistics(points[:48], end=at(48))
    assert short.week_over_week is None


def test_recommendation_rationale() -> None:
    points = [PriceDataPoint(at(0), 1.0), PriceDataPoint(at(3), 2.0), PriceDataPoint(at(4), 4.0)]
    history = PriceHistory("h100-80gb.sxm.8x", "us-central2-a", points, compute_statistics(points, end=at(5)),
                           at(0), at(5))
    advice = recommend_limit_price(history, 0.75, margin=0.10)
    assert advice.price == 2.2
    assert advice.achieved_uptime == pytest.approx(0.8)
    assert advice.margin == 0.10
    assert (advice.window_start, advice.window_end) == (at(0), at(5))
    assert "75%" in advice.rationale and "10% margin" in advice.rationale and "80.0%" in advice.rationale
    with pytest.raises(ValueError):
        recommend_limit_price(history, 1.5)


def test_store_round_trip_and_csv_import(tmp_path) -> None:
    store = PriceStore(tmp_path / "p.sqlite3")
    assert store.is_empty() and store.latest() == []
    path = tmp_path / "in.csv"
    path.write_text("time,instance_type,region,price,availability\n"
                    "2026-01-01T00:00:00Z,h100-80gb.sxm.8x,us-central2-a,$11.20,6\n"
                    "2026-01-01T02:00:00,h100-80gb.sxm.8x,us-central2-a,12.00,\n"
                    "2026-01-01T01:00:00+01:00,a10-24gb.pcie.1x,us-central1-b,0.5,3\n", encoding="utf-8")
    assert store.import_csv(path) == 3
    assert store.import_csv(path) == 3  # idempotent: same keys replace
    latest = store.latest()
    assert [(o.instance_type, o.price, o.availability) for o in latest] == [
        ("a10-24gb.pcie.1x", 0.5, 3), ("h100-80gb.sxm.8x", 12.0, None)]
    assert latest[0].time == T0  # +01:00 converted to UTC
    history = store.history("h100-80gb.sxm.8x", "us-central2-a", at(1), at(3))
    assert history == [PriceDataPoint(at(1), 11.2), PriceDataPoint(at(2), 12.0)]


def test_csv_import_errors(tmp_path) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("time,region,price\n", encoding="utf-8")
    with pytest.raises(StoreError, match="instance_type"):
        PriceStore(tmp_path / "p.sqlite3").import_csv(bad)
    bad.write_text("time,instance_type,region,price\nyesterday,x,y,1\n", encoding="utf-8")
    with pytest.raises(StoreError, match=":2:"):
        PriceStore(tmp_path / "p.sqlite3").import_csv(bad)


def test_source_choice(data_dir, monkeypatch) -> None:
    store = PriceStore()
    assert store.path.parent == data_dir
    assert isinstance(choose_source(None, store), SampleSource)
    from flowc.providers.mithril.domain.store import Observation

    store.record([Observation("a", "r", T0, 1.0)])
    assert isinstance(choose_source(None, store), LocalSource)


def test_sample_source_is_labelled() -> None:
    provider = MithrilProvider("sample")
    assert provider.is_sample
    prices = provider.get_spot_prices()
    assert len({(p.instance_type, p.region) for p in prices}) == 3
    h100 = next(p for p in prices if p.instance_type == "h100-80gb.sxm.8x")
    assert h100.price_per_gpu_hour == pytest.approx(h100.price_per_hour / 8)
    history = provider.get_price_history("8xh100", "us-central2-a", 168)
    assert history.statistics.hours == pytest.approx(168, abs=1)
    assert history.points[0].time == history.start


def test_dashboard_url() -> None:
    url = MithrilProvider("sample").get_price_dashboard_url("8xh100", "us-central2-a")
    assert url.startswith("https://app.mithril.ai/instances/spot?")


def run(*args: str):
    return CliRunner().invoke(main, ["pricing", *args], catch_exceptions=False)


def test_cli_json_spot_sample() -> None:
    result = run("--source", "sample", "--format", "json")
    assert result.exit_code == 0
    doc = json.loads(result.output)
    assert doc["format"] == "flowc.pricing/v1" and doc["kind"] == "spot"
    assert doc["sample_data"] is True and "sample data" in doc["note"]
    assert [p["instance_type"] for p in doc["prices"]] == sorted(p["instance_type"] for p in doc["prices"])
    assert run("--source", "sample", "--format", "json").output == result.output


def test_cli_json_history() -> None:
    result = run("--source", "sample", "--history", "72", "-i", "8xh100", "--format", "json")
    assert result.exit_code == 0, result.output
    doc = json.loads(result.output)
    assert doc["kind"] == "history" and doc["instance_type"] == "h100-80gb.sxm.8x"
    assert set(doc["statistics"]["tiers"]) == {"0.25", "0.50", "0.75", "0.98"}
    assert doc["recommendation"]["price"] >= doc["statistics"]["tiers"]["0.75"]


def test_cli_csv() -> None:
    result = run("--source", "sample", "--format", "csv", "-r", "us-central1-b")
    rows = list(csv.DictReader(io.StringIO(result.output)))
    assert result.exit_code == 0 and len(rows) == 1
    assert rows[0]["region"] == "us-central1-b" and rows[0]["source"] == "sample"
    history = run("--source", "sample", "--format", "csv", "--history", "24", "-i", "a100-80gb.sxm.1x")
    assert history.output.startswith("time,instance_type,region,price,source\n")


def test_cli_table_and_stats() -> None:
    result = run("--source", "sample", "--stats")
    assert result.exit_code == 0
    assert "SAMPLE DATA" in result.output and "h100-80gb.sxm.8x" in result.output
    history = run("--source", "sample", "--history", "48", "-i", "8xh100", "--stats")
    assert history.exit_code == 0
    assert "sample data" in history.output and "suggested limit" in history.output and "by weekday" in history.output


def test_cli_html(tmp_path) -> None:
    out = tmp_path / "prices.html"
    result = run("--source", "sample", "-i", "8xh100", "--html", str(out))
    assert result.exit_code == 0
    page = out.read_text(encoding="utf-8")
    assert "<svg" in page and "<polyline" in page and "sample data" in page
    assert "<script" not in page and "<link" not in page


def test_cli_usage_errors() -> None:
    assert run("--source", "sample", "--history", "24").exit_code == 2
    assert run("--source", "sample", "--history", "24", "-i", "nope").exit_code == 2
    assert run("--source", "sample", "--spot", "--history", "24", "-i", "8xh100").exit_code == 2


def test_cli_import_then_local(tmp_path) -> None:
    path = tmp_path / "obs.csv"
    path.write_text("time,instance_type,region,price\n2026-01-01T00:00:00Z,8xa100,eu-central1-a,9.5\n"
                    "2026-01-01T03:00:00Z,8xa100,eu-central1-a,9.0\n", encoding="utf-8")
    result = run("import", str(path))
    assert result.exit_code == 0
    doc = json.loads(run("--format", "json").output)
    assert doc["source"] == "local" and doc["sample_data"] is False and "note" not in doc
    assert doc["prices"][0]["price_per_hour"] == 9.0 and doc["prices"][0]["price_per_gpu_hour"] == 1.125
    bad = tmp_path / "bad.csv"
    bad.write_text("nope\n", encoding="utf-8")
    assert run("import", str(bad)).exit_code == 1


def test_cli_web() -> None:
    result = run("--web", "-i", "8xh100")
    assert result.exit_code == 0 and result.output.startswith("https://app.mithril.ai/instances/spot")


class FakeEndpoints:
    """Stands in for ``flowc.providers.mithril.api.endpoints``: records calls, never touches the network."""

    def __init__(self, error: Exception | None = None) -> None:
        """Answer normally, or raise ``error`` from ``spot_availability``."""
        self.error = error
        self.calls: list[tuple] = []

    def spot_availability(self, client, project=None):
        from flowc.providers.mithril.api.models import AuctionModel

        self.calls.append(("availability",))
        if self.error is not None:
            raise self.error
        return [AuctionModel.model_validate({"fid": "auc_1", "instance_type": "it_H100", "region": "us-central2-a",
                                             "capacity": 6, "last_instance_price": "$11.20"})]

    def instance_types(self, client):
        from flowc.providers.mithril.api.models import InstanceTypeModel

        return [InstanceTypeModel.model_validate({"fid": "it_H100", "name": "h100-80gb.sxm.8x", "num_gpus": 8})]

    def price_history(self, client, instance_type, region, hours, now=None):
        from flowc.providers.mithril.api.models import PricePoint

        self.calls.append(("history", instance_type, region, hours))
        return [PricePoint(time=now - timedelta(hours=2), price=10.0), PricePoint(time=now - timedelta(minutes=30),
                                                                                    price=11.2)]


@pytest.fixture
def fake_api(monkeypatch):
    fake = FakeEndpoints()
    for name in ("spot_availability", "instance_types", "price_history"):
        monkeypatch.setattr(endpoints, name, getattr(fake, name))
    monkeypatch.setenv("MITHRIL_API_KEY", "fkey_supersecret")
    return fake


def test_live_source_records_and_maps_names(fake_api) -> None:
    provider = MithrilProvider()
    assert provider.source.name == "live"
    prices = provider.get_spot_prices()
    assert [(p.instance_type, p.price_per_hour, p.price_per_gpu_hour, p.availability, p.trend) for p in prices] == [
        ("h100-80gb.sxm.8x", 11.2, 1.4, 6, "up")]
    assert ("history", "it_H100", "us-central2-a", 168) in fake_api.calls
    provider.get_spot_prices()
    assert fake_api.calls.count(("availability",)) == 1  # cached
    stored = PriceStore().history("h100-80gb.sxm.8x", "us-central2-a")
    assert len(stored) == 3 and PriceStore().latest()[0].availability == 6


def test_cli_live_api_error(fake_api) -> None:
    from flowc.providers.mithril.api.errors import KEY_HELP, AuthError

    fake_api.error = AuthError("the api rejected the key", status=401, help=KEY_HELP)
    result = CliRunner().invoke(main, ["pricing", "--format", "json"])
    assert result.exit_code == 1
    assert "the api rejected the key" in result.output and KEY_HELP in result.output
    assert "supersecret" not in result.output
