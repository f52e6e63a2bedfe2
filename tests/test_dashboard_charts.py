"""SVG charts: valid XML, one shape per value, titles and labelled axes, escaped names."""

from __future__ import annotations

import xml.etree.ElementTree as ET

from socialcrm import charts

SVG = "{http://www.w3.org/2000/svg}"


def parse(markup: str) -> ET.Element:
    return ET.fromstring(str(markup))


def texts(root: ET.Element) -> list[str]:
    return [t.text or "" for t in root.iter(f"{SVG}text")]


def test_stacked_bars_draw_one_rect_per_non_zero_value_with_a_title_each() -> None:
    series = [charts.Series("Facebook", [0, 2, 5], ["/a", "/b", "/c"]), charts.Series("X", [1, 0, 3])]
    root = parse(charts.stacked_bars("Volume", "per hour", ["00", "01", "02"], series, "hour of day", "conversations"))
    bars = root.findall(f".//{SVG}rect[@class='bar']")
    assert len(bars) == 4
    assert [b.find(f"{SVG}title").text for b in bars] == ["X, 00: 1", "Facebook, 01: 2", "Facebook, 02: 5", "X, 02: 3"]
    assert len(root.findall(f".//{SVG}a")) == 2      # the Facebook bars with a link (the zero one is not drawn)
    assert root.get("role") == "img" and root.find(f"{SVG}title").text == "Volume"
    assert {"hour of day", "conversations"} <= set(texts(root))
    heights = {b.find(f"{SVG}title").text: float(b.get("height")) for b in bars}
    assert heights["Facebook, 02: 5"] > heights["X, 02: 3"] > heights["Facebook, 01: 2"]


def test_line_chart_has_a_point_per_day_with_data_and_gaps_for_the_rest() -> None:
    points = [charts.Point("18 Nov", 30.0, "/d1"), charts.Point("19 Nov", None), charts.Point("20 Nov", 45.5)]
    root = parse(charts.line_chart("First response", "median", points, "day", "minutes", " min", target=60))
    circles = root.findall(f".//{SVG}circle")
    assert [c.find(f"{SVG}title").text for c in circles] == ["18 Nov: 30 min", "20 Nov: 46 min"]
    assert len(root.find(f".//{SVG}polyline").get("points").split()) == 2
    assert root.find(f".//{SVG}line[@class='target']") is not None
    assert {"day", "minutes", "18 Nov", "20 Nov"} <= set(texts(root))


def test_load_bars_mark_agents_over_capacity() -> None:
    bars = [charts.Bar("Ann", 2, 5, "/ann"), charts.Bar("Bob", 7, 5)]
    root = parse(charts.load_bars("Load", "per agent", bars, "conversations"))
    drawn = root.findall(f".//{SVG}rect[@class]")
    assert [r.get("class") for r in drawn] == ["limit", "bar", "limit", "bar bar-over"]
    assert {"Ann", "Bob", "conversations"} <= set(texts(root))


def test_names_are_escaped_and_an_empty_chart_is_still_valid() -> None:
    evil = '<script>alert(1)</script>" onload="x'
    root = parse(charts.stacked_bars(evil, evil, ["00"], [charts.Series(evil, [1])], evil, evil))
    assert root.find(f"{SVG}title").text == evil     # shown as text, never as markup
    assert root.find(f".//{SVG}script") is None
    empty = parse(charts.line_chart("Nothing", "no data", [], "day", "minutes"))
    assert empty.findall(f".//{SVG}circle") == []
    assert charts.nice_max(0) == 1 and charts.nice_max(37) == 50 and charts.nice_max(180) == 200
