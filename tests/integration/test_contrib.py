"""contrib/ names only metrics that exist (issue 20): every offtok_* metric, and every status,
reason and kind label value, that the Grafana dashboard and the Prometheus alert rules name is in
the ?format=prometheus exposition of a real httpd with the built module."""
import glob
import json
import os
import re

import yaml

from test_status import parse_prometheus

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CONTRIB = os.path.join(REPO, "contrib")
STATUS = "/offtok-status"


def strings(value):
    """Every string inside a JSON document."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for v in value.values():
            yield from strings(v)
    elif isinstance(value, list):
        for v in value:
            yield from strings(v)


def contrib_texts():
    texts = {}
    for path in glob.glob(os.path.join(CONTRIB, "**", "*.json"), recursive=True):
        with open(path) as f:
            texts[path] = "\n".join(strings(json.load(f)))
    for path in glob.glob(os.path.join(CONTRIB, "**", "*.yml"), recursive=True):
        with open(path) as f:
            text = f.read()
        rules = [r for g in yaml.safe_load(text)["groups"] for r in g["rules"]]
        assert rules and all("expr" in r and "alert" in r for r in rules), path
        texts[path] = text
    assert len(texts) >= 2, "contrib/ has no dashboard or no rules"
    return texts


def exposition(httpd):
    httpd.start(f"""
<Location "{STATUS}">
    SetHandler offtok-status
    Require ip 127.0.0.1
</Location>
""")
    r = httpd.get(STATUS + "?format=prometheus")
    assert r.status_code == 200
    samples, _ = parse_prometheus(r.text)
    return samples


def problems(texts, samples):
    """What the texts ({path: text}) name that the exposition (parsed samples) lacks."""
    found = []
    for path, text in texts.items():
        where = os.path.relpath(path, REPO)
        names = set(re.findall(r"\b(offtok_[a-z0-9_]+)", text))
        if not names:
            found.append(f"{where}: names no offtok_ metric")
        for name in sorted(names - set(samples)):
            found.append(f"{where}: {name} is not in the exposition")
        for name, matchers in re.findall(r"\b(offtok_[a-z0-9_]+)\{([^}]*)\}", text):
            for label, op, value in re.findall(r'(\w+)\s*(=~|!=|=)\s*"([^"]*)"', matchers):
                if label == "instance" or name not in samples:
                    continue
                have = {dict(labels).get(label) for labels in samples[name]} - {None}
                if op == "=" and value not in have:
                    found.append(f"{where}: {name}{{{label}=\"{value}\"}} matches nothing "
                                 f"(values: {sorted(have)})")
                if op == "=~" and not any(re.fullmatch(value, v) for v in have):
                    found.append(f"{where}: {name}{{{label}=~\"{value}\"}} matches nothing")
    return found


def test_every_metric_and_label_value_in_contrib_exists(httpd):
    found = problems(contrib_texts(), exposition(httpd))
    assert not found, "\n".join(found)


def test_the_check_sees_a_wrong_metric_or_label_value(httpd):
    samples = exposition(httpd)
    bad = {os.path.join(CONTRIB, "made-up.yml"):
           'rate(offtok_no_such_total[5m]) + offtok_answers_total{status="418"}'
           ' + offtok_answers_total{reason=~"nope|never"} + offtok_answers_total{status="503"}'}
    assert problems(bad, samples) == [
        "contrib/made-up.yml: offtok_no_such_total is not in the exposition",
        'contrib/made-up.yml: offtok_answers_total{status="418"} matches nothing (values: '
        "['200', '400', '401', '403', '429', '500', '503'])",
        'contrib/made-up.yml: offtok_answers_total{reason=~"nope|never"} matches nothing',
    ]
