"""Pricing statistics checked against independent computations, output snapshots, and the HTML page in a browser."""

from __future__ import annotations

import math
import statistics
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from flowc.cli import main
from flowc.providers.mithril.domain.pricing import PriceDataPoint, compute_statistics

from conftest import ROOT, compare_or_update, require_tool

SNAPSHOTS = ROOT / "tests" / "snapshots" / "pricing"
START = datetime(2026, 1, 1, tzinfo=UTC)

series = st.lists(
    st.tuples(st.integers(min_value=1, max_value=6 * 3600), st.floats(min_value=0.01, max_value=500.0)),
    min_size=1, max_size=60)


def points(raw: list[tuple[int, float]]) -> list[PriceDataPoint]:
    out, now = [], START
    for gap, price in raw:
        out.append(PriceDataPoint(now, price))
        now += timedelta(seconds=gap)
    return out


@settings(max_examples=150, deadline=None)
@given(series)
def test_statistics_are_ordered(raw: list[tuple[int, float]]) -> None:
    data = points(raw)
    stats = compute_statistics(data, end=data[-1].time + timedelta(seconds=raw[-1][0]))
    tolerance = 1e-9 * max(p.price for p in data)
    assert stats.min - tolerance <= stats.median <= stats.p95 + tolerance <= stats.max + 2 * tolerance
    assert stats.min - tolerance <= stats.avg <= stats.max + tolerance


@settings(max_examples=100, deadline=None)
@given(st.lists(st.integers(min_value=1, max_value=6 * 3600), min_size=1, max_size=60),
       st.floats(min_value=0.01, max_value=500.0))
def test_a_constant_price_has_no_volatility(gaps: list[int], price: float) -> None:
    data = points([(gap, price) for gap in gaps])
    stats = compute_statistics(data, end=data[-1].time + timedelta(seconds=gaps[-1]))
    # Not exactly 0: the mean is sum(price * seconds) / sum(seconds), which can miss 'price' by an ulp.
    assert stats.volatility <= 1e-12 * price
    assert (stats.min, stats.max, stats.median, stats.p95) == (price,) * 4


def test_volatility_weights_each_price_by_how_long_it_held() -> None:
    # 2.0 for three hours, then 6.0 for one: mean 3, variance (3 * 1 ** 2 + 1 * 3 ** 2) / 4 = 3. Counting the two
    # observations once each would give a standard deviation of 2 instead.
    data = points([(3 * 3600, 2.0), (3600, 6.0)])
    stats = compute_statistics(data, end=START + timedelta(hours=4))
    assert stats.avg == pytest.approx(3.0)
    assert stats.volatility == pytest.approx(math.sqrt(3.0))


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(st.integers(min_value=1, max_value=30), st.floats(min_value=0.01, max_value=500.0)),
                min_size=1, max_size=40))
def test_volatility_is_the_standard_deviation_over_time(raw_minutes: list[tuple[int, float]]) -> None:
    # Independently: one sample per minute of the window, each the price in effect then, and the stdlib's
    # population standard deviation of those samples.
    data = points([(60 * minutes, price) for minutes, price in raw_minutes])
    stats = compute_statistics(data, end=data[-1].time + timedelta(minutes=raw_minutes[-1][0]))
    per_minute = [price for minutes, price in raw_minutes for _ in range(minutes)]
    expected = statistics.pstdev(per_minute)
    assert stats.volatility == pytest.approx(expected, rel=1e-9, abs=1e-9 * max(per_minute))
    assert stats.avg == pytest.approx(statistics.fmean(per_minute), rel=1e-9)


@settings(max_examples=100, deadline=None)
@given(series, st.randoms(use_true_random=False))
def test_statistics_do_not_depend_on_observation_order(raw: list[tuple[int, float]], rnd) -> None:
    data = points(raw)
    end = data[-1].time + timedelta(seconds=raw[-1][0])
    shuffled = list(data)
    rnd.shuffle(shuffled)
    a, b = compute_statistics(data, end=end), compute_statistics(shuffled, end=end)
    assert (a.min, a.max, a.median, a.p95) == (b.min, b.max, b.median, b.p95)
    assert a.avg == pytest.approx(b.avg) and a.volatility == pytest.approx(b.volatility, abs=1e-9)


CASES = {
    "spot.json": ["--source", "sample", "--format", "json"],
    "spot.csv": ["--source", "sample", "--format", "csv"],
    "spot.txt": ["--source", "sample", "--stats"],
    "history.json": ["--source", "sample", "--history", "48", "-i", "8xh100", "--format", "json"],
    "history.csv": ["--source", "sample", "--history", "12", "-i", "a100", "--format", "csv"],
    "history.txt": ["--source", "sample", "--history", "48", "-i", "8xh100", "--stats"],
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_output_snapshots(name: str, update_golden: bool, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("FLOWC_DATA_DIR", str(tmp_path))
    monkeypatch.delenv("MITHRIL_API_KEY", raising=False)
    monkeypatch.setenv("COLUMNS", "120")
    result = CliRunner().invoke(main, ["pricing", *CASES[name]])
    assert result.exit_code == 0, result.output
    compare_or_update(SNAPSHOTS / name, result.stdout, update_golden)


def test_fresh_install_without_key_shows_labelled_sample(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("FLOWC_DATA_DIR", str(tmp_path / "empty"))
    monkeypatch.delenv("MITHRIL_API_KEY", raising=False)
    result = CliRunner().invoke(main, ["pricing"])
    assert result.exit_code == 0
    assert "SAMPLE DATA" in result.output


def test_html_page_renders_in_headless_chromium(tmp_path: Path) -> None:
    chromium = require_tool("chromium", "chromium-browser")
    page = tmp_path / "prices.html"
    result = CliRunner().invoke(main, ["pricing", "--source", "sample", "-i", "8xh100", "--html", str(page)])
    assert result.exit_code == 0
    shot = tmp_path / "shot.png"
    subprocess.run([chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                    "--disable-background-networking", "--disable-component-update", "--disable-sync",
                    f"--user-data-dir={tmp_path / 'profile'}", f"--screenshot={shot}", "--window-size=1000,700",
                    page.as_uri()], capture_output=True, timeout=60, check=False)
    data = shot.read_bytes()
    assert data.startswith(b"\x89PNG") and len(data) > 5000, "a rendered page, not a blank image"
