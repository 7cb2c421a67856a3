"""The quick reference and the master conf/offtok.conf cover every directive (issue 20).

tests/docs/check-quick-reference parses the source's command tables; here its list is compared
with what a real httpd with the built module says it knows (`httpd -L`), the check is run on this
tree, and once on a copy with one directive removed from the reference (it must fail). The master
conf/offtok.conf is checked by httpd -t as shipped and with its example lines switched on."""
import os
import re
import shutil
import subprocess

from httpd import HTTPD_BIN, MODDIR, module_path

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CHECK = os.path.join(REPO, "tests", "docs", "check-quick-reference")
MASTER = os.path.join(REPO, "conf", "offtok.conf")
# Example lines of the master conf that name files or variables this test does not have.
NEEDS_FILES = ("OfftokClientSecret", "OfftokClientFor", "OfftokCAFile", "OfftokRedis",
               "OfftokRedisPassword", "OfftokRedisKey", "OfftokClientKey",
               "OfftokClientCertificate")


def source_directives():
    res = subprocess.run([CHECK, "--list"], capture_output=True, text=True)
    assert res.returncode == 0, res.stdout + res.stderr
    return res.stdout.split()


def minimal_conf(tmp_path, body=""):
    path = tmp_path / "httpd.conf"
    path.write_text(f"""
LoadModule mpm_event_module {MODDIR}/mod_mpm_event.so
LoadModule authn_core_module {MODDIR}/mod_authn_core.so
LoadModule authz_core_module {MODDIR}/mod_authz_core.so
LoadModule offtok_module "{module_path()}"
ServerName 127.0.0.1
DefaultRuntimeDir "{tmp_path}"
PidFile "{tmp_path}/httpd.pid"
ErrorLog "{tmp_path}/error.log"
{body}
""")
    return str(path)


def test_the_check_passes_on_this_tree():
    res = subprocess.run([CHECK], capture_output=True, text=True)
    assert res.returncode == 0, res.stdout + res.stderr


def test_the_source_list_is_what_httpd_knows(tmp_path):
    res = subprocess.run([HTTPD_BIN, "-f", minimal_conf(tmp_path), "-L"], capture_output=True,
                         text=True)
    assert res.returncode == 0, res.stdout + res.stderr
    known = set(re.findall(r"^(Offtok\w+) \(", res.stdout, re.M))
    assert known and known == set(source_directives())


def test_the_check_fails_for_a_directive_missing_from_the_reference(tmp_path):
    tree = tmp_path / "tree"
    for rel in ("tests/docs/check-quick-reference", "docs/quick-reference.md",
                "docs/directives.md", "docs/troubleshooting.md", "conf/offtok.conf", "src"):
        src, dst = os.path.join(REPO, rel), tree / rel
        dst.parent.mkdir(parents=True, exist_ok=True)
        (shutil.copytree if os.path.isdir(src) else shutil.copy)(src, dst)
    ref = tree / "docs" / "quick-reference.md"
    ref.write_text("".join(line for line in ref.read_text().splitlines(True)
                           if not line.startswith("| `OfftokNegativeCacheTTL`")))
    master = tree / "conf" / "offtok.conf"
    master.write_text(master.read_text().replace("#OfftokCacheTTL 60", "#OfftokCacheTTL 61"))
    quick = ref.read_text().replace("| `OfftokSSLVerify` | `On` \\| `Off` | `On` |",
                                    "| `OfftokSSLVerify` | `On` \\| `Off` | `Off` |")
    ref.write_text(quick)
    trouble = tree / "docs" / "troubleshooting.md"
    trouble.write_text(trouble.read_text().replace("| `OT0021` |", "| OT0021 |"))
    res = subprocess.run([str(tree / "tests/docs/check-quick-reference")], capture_output=True,
                         text=True)
    assert res.returncode == 1
    assert "OfftokNegativeCacheTTL: in the source, not in docs/quick-reference.md" in res.stdout
    assert "OfftokSSLVerify: default '`Off`'" in res.stdout
    assert "OT0021: logged by the source, no row in docs/troubleshooting.md" in res.stdout


def test_the_master_conf_is_valid_as_shipped_and_with_its_examples_on(tmp_path):
    shipped = open(MASTER).read()
    res = subprocess.run([HTTPD_BIN, "-t", "-f", minimal_conf(tmp_path, shipped)],
                         capture_output=True, text=True)
    assert res.returncode == 0, res.stdout + res.stderr
    known = set(source_directives())
    lines, switched = [], set()
    for line in shipped.splitlines():
        m = re.match(r"#(Offtok\w+) ", line)
        if m and m.group(1) in known and m.group(1) not in NEEDS_FILES:
            line = line[1:]
            switched.add(m.group(1))
        lines.append(line)
    assert len(switched) >= 15, switched
    res = subprocess.run([HTTPD_BIN, "-t", "-f", minimal_conf(tmp_path, "\n".join(lines))],
                         capture_output=True, text=True)
    assert res.returncode == 0, res.stdout + res.stderr
