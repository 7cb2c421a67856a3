"""The source reads as issue 14 asks: no include circle, the core includes no glue, one message per
log tag.

tests/src/check-includes reads the #include lines of src/, tests/src/check-log-tags the OT####
tags of its messages; each is run on this tree (it must pass), and on copies of src/ with one
circle, one glue include or one reused tag added (each must fail and name what it found). No httpd
and no issuer: the checks read files only."""
import os
import shutil
import subprocess

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CHECK = os.path.join(REPO, "tests", "src", "check-includes")


def run(top):
    return subprocess.run([CHECK, "--top", str(top)], capture_output=True, text=True)


def copy_src(tmp_path):
    shutil.copytree(os.path.join(REPO, "src"), tmp_path / "src")
    return tmp_path


def add_include(path, header):
    text = path.read_text()
    path.write_text(text.replace("#include", f'#include "{header}"\n#include', 1))


def test_tree_has_no_include_circle_and_core_includes_no_glue():
    res = run(REPO)
    assert res.returncode == 0, res.stdout + res.stderr
    assert res.stdout == ""


def test_a_circle_is_found_and_named(tmp_path):
    top = copy_src(tmp_path)
    # ot_shm.c includes ot_shm_layout.h, which includes ot_lock.h: this closes the circle.
    add_include(top / "src" / "ot_lock.h", "ot_shm.h")
    res = run(top)
    assert res.returncode == 1
    assert "include circle: ot_lock -> ot_shm -> ot_shm_layout -> ot_lock" in res.stdout


def test_core_including_glue_is_found(tmp_path):
    top = copy_src(tmp_path)
    add_include(top / "src" / "ot_util.c", "mod_offtok.h")
    res = run(top)
    assert res.returncode == 1
    assert "ot_util.c: core includes glue header mod_offtok.h" in res.stdout


def test_the_old_circles_would_be_found(tmp_path):
    """0.1's ot_shm.h included ot_cache.h while ot_cache.c included ot_shm.h."""
    top = copy_src(tmp_path)
    add_include(top / "src" / "ot_shm.h", "ot_cache.h")
    add_include(top / "src" / "ot_cache.c", "ot_shm.h")
    res = run(top)
    assert res.returncode == 1
    assert "include circle: ot_cache -> ot_shm -> ot_cache" in res.stdout


LOG_TAGS = os.path.join(REPO, "tests", "src", "check-log-tags")


def test_each_log_tag_names_one_message():
    res = subprocess.run([LOG_TAGS], capture_output=True, text=True)
    assert res.returncode == 0, res.stdout + res.stderr


def test_a_tag_reused_for_another_message_is_found(tmp_path):
    top = copy_src(tmp_path)
    path = top / "src" / "mod_offtok_proc.c"
    text = path.read_text()
    assert '"OT0053: ' in text
    path.write_text(text.replace('"OT0053: ', '"OT0051: ', 1))
    res = subprocess.run([LOG_TAGS, "--top", str(top)], capture_output=True, text=True)
    assert res.returncode == 1
    assert res.stdout.startswith("OT0051 begins 2 messages: mod_offtok_proc.c:")
