"""infra/ checked with what runs here (no Bicep CLI can be installed): every .bicep file parses
(tree-sitter-bicep), checkov's Bicep scan fails nothing and parses everything (it exits 0 on a
parse error, so the count is checked), the role IDs are the real built-in ones, and the app
settings the Bicep provides are exactly the ones the code reads."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest
import tree_sitter_bicep
from tree_sitter import Language, Node, Parser

from shared.settings import SETTING_NAMES

ROOT = Path(__file__).resolve().parent.parent
INFRA = ROOT / "infra"
BICEP = sorted(INFRA.rglob("*.bicep"))

#: Built-in role definition IDs (learn.microsoft.com, "Azure built-in roles").
BUILT_IN_ROLES = {
    "8311e382-0749-4cb8-b61a-304f252e45ec": "AcrPush",
    "7f951dda-4ed3-4680-a7ca-43fe172d538d": "AcrPull",
    "577a9874-89fd-4f24-9dbd-b5034d0ad23a": "Container Registry Data Importer and Data Reader",
    "b93aa761-3e63-49ed-ac28-beffa264f7ac": "Container Registry Repository Reader",
    "2a1e307c-b015-4ebd-883e-5b7698a07328": "Container Registry Repository Writer",
    "b24988ac-6180-42a0-ab88-20f7382dd24c": "Contributor",
    "b7e6dc6d-f1e8-4753-8033-0f276bb0955b": "Storage Blob Data Owner",
    "974c5e8b-45b9-4653-ba55-5f855dd0fb88": "Storage Queue Data Contributor",
    "0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3": "Storage Table Data Contributor",
    "3913510d-42f4-4e42-8a64-420c390055eb": "Monitoring Metrics Publisher",
    "4633458b-17de-408a-b874-0445c86b69e6": "Key Vault Secrets User",
    "d5a91429-5739-47e2-a06b-3470a27159e7": "EventGrid Data Sender",
}
#: Settings only the Functions host or App Insights read (not Ferry's code).
HOST_ONLY = {
    "AzureWebJobsStorage__credential", "AzureWebJobsStorage__blobServiceUri",
    "APPLICATIONINSIGHTS_CONNECTION_STRING", "APPLICATIONINSIGHTS_AUTHENTICATION_STRING",
    "PYTHON_ENABLE_OPENTELEMETRY",
}  # fmt: skip
#: Settings the code reads that Azure does not need: a connection string (Azurite), and the
#: local worker's knobs whose defaults suit the host.
LOCAL_ONLY = {"AzureWebJobsStorage"}
#: Settings App Service sets itself (WEBSITE_AUTH_ENABLED: when its authentication is on).
PLATFORM = {"WEBSITE_AUTH_ENABLED"}


def errors(node: Node) -> list[str]:
    found = [f"{node.start_point}" for n in [node] if n.type == "ERROR" or n.is_missing]
    for child in node.children:
        found += errors(child)
    return found


@pytest.mark.parametrize("path", BICEP, ids=lambda p: str(p.relative_to(INFRA)))
def test_bicep_parses(path: Path) -> None:
    root = Parser(Language(tree_sitter_bicep.language())).parse(path.read_bytes()).root_node
    assert not root.has_error and errors(root) == []


def test_tree_sitter_catches_a_broken_file() -> None:
    broken = b"resource x 'Microsoft.Storage/storageAccounts@2023-05-01' = {\n  name: 'a'\n"
    assert Parser(Language(tree_sitter_bicep.language())).parse(broken).root_node.has_error


def test_role_ids_are_real_built_in_roles() -> None:
    text = "\n".join(p.read_text() for p in BICEP)
    guids = set(re.findall(r"'([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})'", text))
    assert guids and guids <= set(BUILT_IN_ROLES), guids - set(BUILT_IN_ROLES)
    for guid, name in BUILT_IN_ROLES.items():
        for line in (ln for ln in text.splitlines() if guid in ln and "//" in ln):
            assert name in line, f"{guid} is {name}: {line.strip()}"
    roles = (INFRA / "modules" / "registry-roles.bicep").read_text()
    assert "Microsoft.ContainerRegistry/registries/importImage/action" in roles
    assert re.findall(r"'(Microsoft\.ContainerRegistry/registries/[^']+)'", roles) == [
        "Microsoft.ContainerRegistry/registries/read",
        "Microsoft.ContainerRegistry/registries/pull/read",
        "Microsoft.ContainerRegistry/registries/push/write",
        "Microsoft.ContainerRegistry/registries/importImage/action",
    ]
    assert all(
        "name: guid(" in block for block in re.split(r"\nresource ", text) if "roleAssignments@" in block.split("\n")[0]
    )


def test_app_settings_match_what_the_code_reads() -> None:
    main = (INFRA / "main.bicep").read_text()
    block = main[main.index("var appSettings = concat([") : main.index("], credentialUsernames, credentialPasswords")]
    provided = set(re.findall(r"\{ name: '([A-Za-z0-9_]+)', value:", block))
    assert "FERRY_CREDENTIAL_${toUpper(replace(c.name, '-', '_'))}_USERNAME" in main  # named credentials
    bindings = set(re.findall(r"%([A-Z_]+)%", "\n".join(p.read_text() for p in (ROOT / "functions").glob("*.py"))))
    read = (SETTING_NAMES | bindings) - LOCAL_ONLY - PLATFORM
    assert read - provided == set(), "settings the code reads that the Bicep does not provide"
    assert provided - read - HOST_ONLY == set(), "settings the Bicep provides that nothing reads"
    example = json.loads((ROOT / "local.settings.example.json").read_text())["Values"]
    assert (SETTING_NAMES | bindings) - PLATFORM - {
        "AzureWebJobsStorage__accountName",
        "AzureWebJobsStorage__queueServiceUri",
        "AzureWebJobsStorage__tableServiceUri",
        "AzureWebJobsStorage__clientId",
        "AZURE_CLIENT_ID",
    } <= set(example)


@pytest.mark.process
def test_checkov_fails_nothing_and_parses_everything() -> None:
    checkov = ROOT / ".venv-checkov" / "bin" / "checkov"
    assert checkov.exists(), "run `make test` (scripts/bootstrap.sh --test installs checkov into .venv-checkov)"
    done = subprocess.run(
        [str(checkov), "-d", str(INFRA), "--framework", "bicep", "--quiet", "--skip-download", "-o", "json"],
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    report = json.loads(done.stdout)
    summary = (report if isinstance(report, dict) else report[0])["summary"]
    assert summary["parsing_errors"] == 0 and summary["failed"] == 0, summary
    assert summary["resource_count"] >= 20 and summary["passed"] >= 20
    for path in BICEP:  # every skip says why
        for skip in re.findall(r"checkov:skip=([^\n]*)", path.read_text()):
            check, _, reason = skip.partition(":")
            assert re.fullmatch(r"CKV_AZURE_\d+", check) and len(reason.strip()) > 20, skip


def test_alerts_read_metrics_the_code_sends_and_go_to_the_action_group() -> None:
    alerts = (INFRA / "modules" / "alerts.bicep").read_text()
    meters = (ROOT / "shared" / "telemetry" / "meters.py").read_text()
    rules = re.findall(r"resource \w+ 'Microsoft\.Insights/scheduledQueryRules@", alerts)
    assert len(rules) == 2
    for metric in re.findall(r'name == "([a-z._]+)"', alerts):
        assert f'"{metric}"' in meters, f"{metric}: no instrument sends it"
    for attribute in re.findall(r'customDimensions\["([a-z._]+)"\]', alerts):
        assert f'"{attribute}"' in meters, f"{attribute}: no instrument has it"
    assert alerts.count("actions: actions") == 2 and "actionGroupId\n  ]" in alerts
    main = (INFRA / "main.bicep").read_text()
    assert "actionGroupId: alertActionGroupId" in main and "mirrorBehindMinutes: mirrorBehindMinutes" in main
    assert json.loads((ROOT / "host.json").read_text())["telemetryMode"] == "OpenTelemetry"


def test_the_workbook_reads_what_the_code_sends() -> None:
    workbook = (INFRA / "modules" / "workbook.bicep").read_text()
    telemetry = "\n".join(p.read_text() for p in (ROOT / "shared").rglob("*.py"))
    metrics = re.findall(r'"(ferry\.[a-z._]+)"', workbook)
    assert {"ferry.jobs", "ferry.copy.bytes", "ferry.queue.depth", "ferry.rule.tags_behind", "ferry.import"} <= set(
        metrics
    )
    for name in [*metrics, *re.findall(r'customDimensions\["([a-z._]+)"\]', workbook)]:
        assert f'"{name}"' in telemetry, f"{name}: nothing sends it"
    assert "module workbook 'modules/workbook.bicep'" in (INFRA / "main.bicep").read_text()
