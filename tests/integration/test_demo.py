"""The demo leaves the host's running services alone (issue 20): demo/demo and the
tests/tools/install-deps it runs stop a service (apache2, nginx, redis-server) only when that run
has just installed its package, and `--plan` says what would happen without doing it.

Nothing here touches the machine: dpkg-query, apt-get, service, npm and id are fakes first on
PATH that record how they were called."""
import os
import subprocess

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
INSTALL_DEPS = os.path.join(REPO, "tests", "tools", "install-deps")
DEMO = os.path.join(REPO, "demo", "demo")

FAKES = {
    # Every package is installed except those named in FAKE_MISSING.
    "dpkg-query": 'pkg=$(eval echo \\${$#})\n'
                  'case " $FAKE_MISSING " in *" $pkg "*) exit 1 ;; esac\n'
                  'printf "install ok installed"\n',
    "apt-get": 'echo "apt-get $*" >>"$FAKE_LOG"\n',
    "service": 'echo "service $*" >>"$FAKE_LOG"\n',
    "systemctl": 'echo "systemctl $*" >>"$FAKE_LOG"\n',
    "npm": 'echo "npm $*" >>"$FAKE_LOG"\n',
    "node": 'exit 0\n',
    "id": 'echo 0\n',
}


@pytest.fixture
def fake_host(tmp_path):
    bindir = tmp_path / "bin"
    bindir.mkdir()
    for name, body in FAKES.items():
        path = bindir / name
        path.write_text("#!/bin/sh\n" + body)
        path.chmod(0o755)
    log = tmp_path / "calls.log"
    log.write_text("")

    def run(argv, missing=""):
        env = {"PATH": f"{bindir}:/usr/bin:/bin", "FAKE_LOG": str(log),
               "FAKE_MISSING": missing, "HOME": str(tmp_path)}
        res = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=60)
        calls = [line for line in log.read_text().splitlines() if line]
        log.write_text("")
        return res, calls
    return run


def service_calls(calls):
    return [c for c in calls if c.startswith(("service ", "systemctl "))]


def test_install_deps_stops_no_service_when_it_installed_nothing(fake_host):
    res, calls = fake_host([INSTALL_DEPS])
    assert res.returncode == 0, res.stderr
    assert service_calls(calls) == []
    assert not [c for c in calls if c.startswith("apt-get")]


def test_install_deps_stops_only_the_services_of_packages_it_installed(fake_host):
    res, calls = fake_host([INSTALL_DEPS], missing="nginx-light check")
    assert res.returncode == 0, res.stderr
    assert any(c.startswith("apt-get install") and "nginx-light" in c for c in calls), calls
    assert service_calls(calls) == ["service nginx stop"]


def test_install_deps_plan_changes_nothing(fake_host):
    res, calls = fake_host([INSTALL_DEPS, "--plan"], missing="apache2 redis-server")
    assert res.returncode == 0, res.stderr
    assert calls == []
    assert "would install from Debian's archive: apache2 redis-server" in res.stdout
    assert "would stop afterwards (services of packages it installs): apache2 redis-server" \
        in res.stdout


def test_demo_plan_says_what_it_would_do_and_does_nothing(fake_host):
    res, calls = fake_host([DEMO, "--plan"])
    assert res.returncode == 0, res.stderr
    assert calls == []
    assert "would stop afterwards (services of packages it installs): none" in res.stdout
    assert "would build the module in" in res.stdout
    assert "127.0.0.1" in res.stdout
