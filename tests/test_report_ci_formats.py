"""The CI-gate formats: SARIF (validated against the real schema), JUnit, GitLab, GitHub."""
from __future__ import annotations

import json
import types
import xml.etree.ElementTree as ET
from pathlib import Path

import jsonschema
import pytest

from evallint import __version__
from evallint.baseline import fingerprints
from evallint.diagnostic import Applicability, Diagnostic, Edit, Fix, Severity
from evallint.report import github, gitlab, junit, sarif
from evallint.rule import Rule

# The OASIS SARIF 2.1.0 schema, kept as test data so a clone alone runs the tests.
SCHEMA = Path(__file__).resolve().parent / "data" / "sarif-schema-2.1.0.json"


class AccumulatorOverwrite(Rule):
    """## What it does
    Flags a metric accumulator that is overwritten in the batch loop.

    ## Why it is wrong
    The metric becomes last-batch-correct / all samples.
    """

    code, name, summary = "EL101", "accumulator-overwrite", "Accumulator overwritten in a loop"
    severity = Severity.ERROR
    fixable = Applicability.SAFE


class FixedBatchSize(Rule):
    """Counts samples with a constant batch size."""

    code, name, summary = "EL104", "fixed-batch-size-count", "Constant batch size counted"
    severity = Severity.WARNING


class SyntaxErrorRule(Rule):
    """The file does not parse."""

    code, name, summary = "EL000", "syntax-error", "The file does not parse"
    severity = Severity.ERROR


class FakeRuleSet:
    """The RuleSet interface the reporters use: all(), get(), engine_codes()."""

    def __init__(self, rules, engine):
        self._rules, self._engine = rules, engine

    def all(self):
        return sorted(self._rules, key=lambda r: r.code)

    def get(self, code):
        return next((r for r in self._rules + self._engine if code in (r.code, r.name)), None)

    def engine_codes(self):
        return [r.code for r in self._engine]


def make_ctx(cwd: Path, files_checked=()):
    rules = FakeRuleSet([FixedBatchSize, AccumulatorOverwrite], [SyntaxErrorRule])
    return types.SimpleNamespace(rules=rules, cwd=cwd, fixed=0, sources={},
                                 files_checked=list(files_checked))


OVERWRITE_FIX = Fix(Applicability.SAFE, "Accumulate with `+=`",
                    (Edit(7, 17, 7, 18, "+="),))


def overwrite(line=7, path="src/eval.py", cell=None, column=9, end_column=16, fix=OVERWRITE_FIX,
              text="        correct = (predicted == labels).sum().item()") -> Diagnostic:
    return Diagnostic("EL101", "accumulator-overwrite", Severity.ERROR,
                      "`correct` is overwritten in each batch; use `+=`", path, line, column,
                      line, end_column, cell, fix, (text,))


def batch_size(line=12, path="src/eval.py", severity=Severity.WARNING) -> Diagnostic:
    return Diagnostic("EL104", "fixed-batch-size-count", severity,
                      "`total += 64` miscounts the short last batch", path, line, 9, line, 20,
                      source_lines=("        total += 64",))


# SARIF -------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def sarif_validator():
    if not SCHEMA.is_file():
        pytest.fail(f"SARIF schema not found at {SCHEMA}: it is part of the repository's test data")
    return jsonschema.Draft7Validator(json.loads(SCHEMA.read_text(encoding="utf-8")))


def sarif_of(diags, cwd, validator):
    document = json.loads(sarif.render(diags, make_ctx(cwd)))
    errors = sorted(validator.iter_errors(document), key=lambda e: list(e.path))
    assert not errors, "\n".join(f"{list(e.path)}: {e.message}" for e in errors)
    return document


def test_sarif_envelope_and_driver(tmp_path, sarif_validator):
    document = sarif_of([overwrite()], tmp_path, sarif_validator)
    assert document["$schema"] == sarif.SCHEMA_URI
    assert document["version"] == "2.1.0"
    (run,) = document["runs"]
    assert run["columnKind"] == "unicodeCodePoints"
    assert run["originalUriBaseIds"] == {"%SRCROOT%": {"uri": tmp_path.resolve().as_uri() + "/"}}
    driver = run["tool"]["driver"]
    assert (driver["name"], driver["version"]) == ("evallint", __version__)
    assert driver["informationUri"] == "https://evallint.dev"


def test_sarif_rules_describe_every_rule_and_engine_code(tmp_path, sarif_validator):
    rules = sarif_of([], tmp_path, sarif_validator)["runs"][0]["tool"]["driver"]["rules"]
    assert [r["id"] for r in rules] == ["EL000", "EL101", "EL104"]
    el101 = rules[1]
    assert el101 == {
        "id": "EL101",
        "name": "accumulator-overwrite",
        "shortDescription": {"text": "Accumulator overwritten in a loop"},
        "fullDescription": {"text": "Flags a metric accumulator that is overwritten in the batch loop."},
        "help": {"text": AccumulatorOverwrite.documentation(),
                 "markdown": AccumulatorOverwrite.documentation()},
        "defaultConfiguration": {"level": "error"},
        "helpUri": "https://evallint.dev/rules/EL101",
    }
    # Without a "What it does" section the summary is the full description.
    assert rules[2]["fullDescription"] == {"text": "Constant batch size counted"}
    assert rules[2]["defaultConfiguration"] == {"level": "warning"}


def test_sarif_result_fields(tmp_path, sarif_validator):
    diag = overwrite()
    (result,) = sarif_of([diag], tmp_path, sarif_validator)["runs"][0]["results"]
    (fingerprint,) = fingerprints([diag], tmp_path, tmp_path)
    assert result == {
        "ruleId": "EL101",
        "ruleIndex": 1,
        "level": "error",
        "message": {"text": "`correct` is overwritten in each batch; use `+=`"},
        "locations": [{"physicalLocation": {
            "artifactLocation": {"uri": "src/eval.py", "uriBaseId": "%SRCROOT%"},
            "region": {"startLine": 7, "startColumn": 9, "endLine": 7, "endColumn": 16},
        }}],
        "partialFingerprints": {"evallint/v1": fingerprint},
        "fixes": [{
            "description": {"text": "Accumulate with `+=`"},
            "artifactChanges": [{
                "artifactLocation": {"uri": "src/eval.py", "uriBaseId": "%SRCROOT%"},
                "replacements": [{
                    "deletedRegion": {"startLine": 7, "startColumn": 17, "endLine": 7, "endColumn": 18},
                    "insertedContent": {"text": "+="},
                }],
            }],
            "properties": {"applicability": "safe"},
        }],
    }


def test_sarif_levels_ordering_and_rule_index(tmp_path, sarif_validator):
    diags = [batch_size(3, "b.py", Severity.INFO), overwrite(path="a.py", fix=None), batch_size(1, "a.py")]
    run = sarif_of(diags, tmp_path, sarif_validator)["runs"][0]
    ids = [r["id"] for r in run["tool"]["driver"]["rules"]]
    summary = [(r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"], r["ruleId"],
                r["level"], ids[r["ruleIndex"]]) for r in run["results"]]
    assert summary == [("a.py", "EL104", "warning", "EL104"), ("a.py", "EL101", "error", "EL101"),
                       ("b.py", "EL104", "note", "EL104")]
    assert "fixes" not in run["results"][1]


def test_sarif_notebook_keeps_cell_line_and_names_the_cell(tmp_path, sarif_validator):
    fix = Fix(Applicability.SAFE, "Accumulate with `+=`", (Edit(2, 13, 2, 14, "+=", cell=3),))
    diag = overwrite(line=2, path="nb.ipynb", cell=3, fix=fix)
    (result,) = sarif_of([diag], tmp_path, sarif_validator)["runs"][0]["results"]
    location = result["locations"][0]["physicalLocation"]
    assert location["region"] == {"startLine": 2, "startColumn": 9, "endLine": 2, "endColumn": 16,
                                  "properties": {"cell": 3}}
    assert result["message"]["text"].startswith("Cell 3: `correct` is overwritten")
    # A consumer would apply SARIF fixes to lines of the .ipynb JSON: none are offered.
    assert "fixes" not in result


def test_sarif_uris_are_encoded_relative_or_absolute_outside_cwd(tmp_path, sarif_validator):
    inside = tmp_path / "repo"
    inside.mkdir()
    diags = [overwrite(path="my evals/ëval.py"), overwrite(path=str(tmp_path / "elsewhere.py")),
             overwrite(path="./src/../100%.py")]
    results = sarif_of(diags, inside, sarif_validator)["runs"][0]["results"]
    artifacts = [r["locations"][0]["physicalLocation"]["artifactLocation"] for r in results]
    assert {"uri": (tmp_path / "elsewhere.py").as_uri()} in artifacts
    assert {"uri": "my%20evals/%C3%ABval.py", "uriBaseId": "%SRCROOT%"} in artifacts
    assert {"uri": "100%25.py", "uriBaseId": "%SRCROOT%"} in artifacts


def test_sarif_columns_count_code_points_past_astral_characters(tmp_path, sarif_validator):
    # "🙂" is one code point but two UTF-16 units; columnKind makes column 20 mean 20.
    diag = overwrite(column=20, end_column=27, text="s = '🙂'; correct = n")
    (result,) = sarif_of([diag], tmp_path, sarif_validator)["runs"][0]["results"]
    assert result["locations"][0]["physicalLocation"]["region"]["startColumn"] == 20


def test_sarif_describes_codes_the_registry_does_not_know(tmp_path, sarif_validator):
    stray = Diagnostic("XY900", "team-rule", Severity.WARNING, "m", "a.py", 1, 1, 1, 2)
    run = sarif_of([stray], tmp_path, sarif_validator)["runs"][0]
    rules = run["tool"]["driver"]["rules"]
    assert rules[-1]["id"] == "XY900" and rules[-1]["name"] == "team-rule"
    assert "helpUri" not in rules[-1]
    assert run["results"][0]["ruleIndex"] == len(rules) - 1


def test_sarif_output_is_deterministic(tmp_path):
    diags = [overwrite(), batch_size(), overwrite(40)]
    ctx = make_ctx(tmp_path)
    assert sarif.render(diags, ctx) == sarif.render(list(reversed(diags)), ctx)


# GitLab ------------------------------------------------------------------------------

def test_gitlab_code_quality_issues(tmp_path):
    diags = [batch_size(severity=Severity.INFO), overwrite(), overwrite(2, "nb.ipynb", cell=4)]
    issues = json.loads(gitlab.render(diags, make_ctx(tmp_path)))
    expected_prints = fingerprints(sorted(diags, key=lambda d: d.sort_key), tmp_path, tmp_path)
    assert issues == [
        {"description": "EL101 Cell 4: `correct` is overwritten in each batch; use `+=`",
         "check_name": "EL101", "fingerprint": expected_prints[0], "severity": "critical",
         "location": {"path": "nb.ipynb", "lines": {"begin": 2, "end": 2}}},
        {"description": "EL101 `correct` is overwritten in each batch; use `+=`",
         "check_name": "EL101", "fingerprint": expected_prints[1], "severity": "critical",
         "location": {"path": "src/eval.py", "lines": {"begin": 7, "end": 7}}},
        {"description": "EL104 `total += 64` miscounts the short last batch",
         "check_name": "EL104", "fingerprint": expected_prints[2], "severity": "info",
         "location": {"path": "src/eval.py", "lines": {"begin": 12, "end": 12}}},
    ]
    assert json.loads(gitlab.render([batch_size()], make_ctx(tmp_path)))[0]["severity"] == "major"


def test_gitlab_fingerprints_are_unique_and_survive_moved_lines(tmp_path):
    ctx = make_ctx(tmp_path)
    before = [i["fingerprint"] for i in json.loads(gitlab.render([overwrite(7), overwrite(30)], ctx))]
    after = [i["fingerprint"] for i in json.loads(gitlab.render([overwrite(19), overwrite(44)], ctx))]
    assert before == after and len(set(before)) == 2


def test_gitlab_empty_report_is_an_empty_list(tmp_path):
    assert json.loads(gitlab.render([], make_ctx(tmp_path))) == []


# GitHub ------------------------------------------------------------------------------

def test_github_annotations(tmp_path):
    diags = [batch_size(severity=Severity.INFO), overwrite(), batch_size(20)]
    out = github.render(diags, make_ctx(tmp_path))
    assert out.splitlines() == [
        "::error file=src/eval.py,line=7,col=9,endLine=7,endColumn=16,title=EL101::"
        "`correct` is overwritten in each batch; use `+=`",
        "::notice file=src/eval.py,line=12,col=9,endLine=12,endColumn=20,title=EL104::"
        "`total += 64` miscounts the short last batch",
        "::warning file=src/eval.py,line=20,col=9,endLine=20,endColumn=20,title=EL104::"
        "`total += 64` miscounts the short last batch",
    ]
    assert out.endswith("\n")


def test_github_escapes_properties_and_messages(tmp_path):
    odd = Diagnostic("EL101", "accumulator-overwrite", Severity.ERROR,
                     "100% wrong:\r\nsee a,b", "we,ird:dir/100%.py", 3, 1, 3, 4)
    (line,) = github.render([odd], make_ctx(tmp_path)).splitlines()
    assert line == ("::error file=we%2Cird%3Adir/100%25.py,line=3,col=1,endLine=3,endColumn=4,"
                    "title=EL101::100%25 wrong:%0D%0Asee a,b")
    assert github.escape_property("a%0A:,\n") == "a%250A%3A%2C%0A"


def test_github_notebook_annotation_is_file_level_and_names_the_cell(tmp_path):
    (line,) = github.render([overwrite(2, "nb.ipynb", cell=3)], make_ctx(tmp_path)).splitlines()
    assert line == ("::error file=nb.ipynb,title=EL101::Cell 3, line 2, column 9: "
                    "`correct` is overwritten in each batch; use `+=`")


def test_github_no_findings_prints_nothing(tmp_path):
    assert github.render([], make_ctx(tmp_path)) == ""


# JUnit -------------------------------------------------------------------------------

def junit_of(diags, cwd, files_checked):
    text = junit.render(diags, make_ctx(cwd, files_checked))
    assert text.startswith('<?xml version="1.0" encoding="UTF-8"?>\n')
    return ET.fromstring(text.encode("utf-8"))


def test_junit_one_case_per_file_and_one_failure_per_finding(tmp_path):
    diags = [overwrite(), batch_size(), overwrite(5, "nb.ipynb", cell=2)]
    root = junit_of(diags, tmp_path, ["src/eval.py", "clean.py", "nb.ipynb"])
    assert root.tag == "testsuites"
    assert root.attrib == {"name": "evallint", "tests": "3", "failures": "2", "errors": "0"}
    (suite,) = root
    assert suite.attrib == {"name": "evallint", "tests": "3", "failures": "2", "errors": "0",
                            "skipped": "0"}
    cases = {case.get("name"): case for case in suite}
    assert list(cases) == ["clean.py", "nb.ipynb", "src/eval.py"]
    assert all(c.get("classname") == "evallint" for c in cases.values())
    assert list(cases["clean.py"]) == []
    failures = [(f.get("type"), f.get("message"), f.text) for f in cases["src/eval.py"]]
    assert failures == [
        ("EL101", "`correct` is overwritten in each batch; use `+=`",
         "src/eval.py:7:9: EL101 `correct` is overwritten in each batch; use `+=`"),
        ("EL104", "`total += 64` miscounts the short last batch",
         "src/eval.py:12:9: EL104 `total += 64` miscounts the short last batch"),
    ]
    assert cases["nb.ipynb"][0].text.startswith("nb.ipynb:cell 2:5:9: EL101 ")


def test_junit_escapes_markup_and_drops_control_characters(tmp_path):
    odd = Diagnostic("EL101", "accumulator-overwrite", Severity.ERROR,
                     'a < b && "c" > \'d\'\x07', "x&y.py", 1, 1, 1, 2)
    root = junit_of([odd], tmp_path, [])
    failure = root.find("./testsuite/testcase/failure")
    assert failure.get("message") == 'a < b && "c" > \'d\'\ufffd'
    assert root.find("./testsuite/testcase").get("name") == "x&y.py"


def test_junit_clean_run_has_passing_cases(tmp_path):
    root = junit_of([], tmp_path, ["b.py", "a.py"])
    assert root.attrib["tests"] == "2" and root.attrib["failures"] == "0"
    assert [c.get("name") for c in root.iter("testcase")] == ["a.py", "b.py"]


def test_sarif_with_the_real_rule_registry_is_valid(tmp_path, sarif_validator):
    from evallint.registry import load_rules

    rules = load_rules()
    ctx = types.SimpleNamespace(rules=rules, cwd=tmp_path, fixed=0, sources={}, files_checked=[])
    document = json.loads(sarif.render([overwrite()], ctx))
    assert not list(sarif_validator.iter_errors(document))
    descriptors = document["runs"][0]["tool"]["driver"]["rules"]
    assert [d["id"] for d in descriptors] == sorted(r.code for r in rules.everything())
    for descriptor in descriptors:
        rule = rules.get(descriptor["id"])
        assert descriptor["helpUri"] == rule.docs_url()
        assert descriptor["help"]["markdown"] == rule.documentation()
        assert descriptor["fullDescription"]["text"], descriptor["id"]


# The real CLI on a small project --------------------------------------------------------

BUGGY = """
import torch


def evaluate(model, test_loader):
    correct = 0
    total = 0
    with torch.no_grad():
        for images, labels in test_loader:
            outputs = model(images)
            _, predicted = torch.max(outputs, 1)
            total += labels.size(0)
            correct = (predicted == labels).sum().item()
    print(100 * correct / total)
"""
OVERWRITE_LINE = 12  # `correct = ...` in BUGGY


@pytest.fixture
def project(tmp_path, write):
    write("src/eval.py", BUGGY)
    write("src/clean.py", "def double(x):\n    return 2 * x\n")
    return tmp_path


def cli_json(cli, project):
    """The findings as `--format json` reports them: the oracle for the other formats."""
    done = cli("check", "--format", "json", "--no-cache", ".", cwd=project)
    assert done.returncode == 1, done.stderr
    return json.loads(done.stdout)


def test_cli_sarif_is_valid_and_locates_the_overwrite(cli, project, sarif_validator):
    done = cli("check", "--format", "sarif", ".", cwd=project)
    assert done.returncode == 1, done.stderr
    document = json.loads(done.stdout)
    assert not list(sarif_validator.iter_errors(document))
    run = document["runs"][0]
    by_rule = {r["ruleId"]: r for r in run["results"]}
    result = by_rule["EL101"]
    assert run["tool"]["driver"]["rules"][result["ruleIndex"]]["id"] == "EL101"
    location = result["locations"][0]["physicalLocation"]
    assert location["artifactLocation"] == {"uri": "src/eval.py", "uriBaseId": "%SRCROOT%"}
    assert location["region"]["startLine"] == OVERWRITE_LINE
    (replacement,) = result["fixes"][0]["artifactChanges"][0]["replacements"]
    assert replacement["insertedContent"] == {"text": "+"}
    assert len(run["results"]) == len(cli_json(cli, project))


def test_cli_github_matches_the_json_findings(cli, project):
    expected = [
        f"::{d['severity']} file=src/eval.py,line={d['line']},col={d['column']},"
        f"endLine={d['end_line']},endColumn={d['end_column']},title={d['code']}::{d['message']}"
        for d in cli_json(cli, project)
    ]
    done = cli("check", "--format", "github", ".", cwd=project)
    assert done.returncode == 1, done.stderr
    assert done.stdout.splitlines() == expected
    assert any(f"line={OVERWRITE_LINE},col=" in line and "title=EL101" in line for line in expected)


def test_cli_gitlab_matches_the_json_findings(cli, project):
    found = cli_json(cli, project)
    done = cli("check", "--format", "gitlab", ".", cwd=project)
    assert done.returncode == 1, done.stderr
    issues = json.loads(done.stdout)
    assert [(i["check_name"], i["location"], i["severity"]) for i in issues] == [
        (d["code"], {"path": "src/eval.py", "lines": {"begin": d["line"], "end": d["end_line"]}},
         "critical" if d["severity"] == "error" else "major") for d in found]
    assert len({i["fingerprint"] for i in issues}) == len(issues)


def test_cli_junit_lists_clean_and_failing_files(cli, project):
    found = cli_json(cli, project)
    done = cli("check", "--format", "junit", ".", cwd=project)
    assert done.returncode == 1, done.stderr
    root = ET.fromstring(done.stdout.encode("utf-8"))
    cases = {c.get("name"): [f.get("type") for f in c] for c in root.iter("testcase")}
    assert cases == {"src/clean.py": [], "src/eval.py": [d["code"] for d in found]}
    assert (root.get("tests"), root.get("failures")) == ("2", "1")
