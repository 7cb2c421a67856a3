"""The source reads as issue 14 asks: no include circle, the core includes no glue, one message per
log tag, no call circle between the glue's files; and no test file hides a test under a second
definition of its name.

tests/src/check-includes reads the #include lines of src/, tests/src/check-log-tags the OT####
tags of its messages; each is run on this tree (it must pass), and on copies of src/ with one
circle, one glue include or one reused tag added (each must fail and name what it found).
tests/src/check-calls reads the built glue objects beside $OFFTOK_MODULE with nm (it must pass),
and three tiny objects compiled here that call in a circle (it must name it). No httpd and no
issuer: the checks read files only."""
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


CALLS = os.path.join(REPO, "tests", "src", "check-calls")


def glue_objects():
    """src/.libs of the build that made $OFFTOK_MODULE (libtool's objects of the module)."""
    from httpd import module_path
    objdir = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(module_path()))),
                          "src", ".libs")
    assert os.path.isdir(objdir), f"no objects beside the module: {objdir}"
    return objdir


def test_glue_files_call_one_another_without_a_circle():
    """The glue's call graph, read from the built objects with nm, is a DAG; mod_offtok.c calls
    down into the other files and none calls it (the module record aside)."""
    res = subprocess.run([CALLS, glue_objects()], capture_output=True, text=True)
    assert res.returncode == 0, res.stdout + res.stderr
    graph = subprocess.run([CALLS, "--graph", glue_objects()], capture_output=True, text=True)
    assert graph.returncode == 0, graph.stderr
    assert "mod_offtok -> mod_offtok_authn: offtok_check" in graph.stdout
    assert not [line for line in graph.stdout.splitlines()
                if line.split(" -> ")[1].startswith("mod_offtok:")]


def compile_glue(tmp_path, name, source):
    path = tmp_path / f"mod_offtok_la-{name}.c"
    path.write_text(source)
    subprocess.run(["cc", "-c", "-o", str(path.with_suffix(".o")), str(path)], check=True)


def test_a_call_circle_between_glue_files_is_found(tmp_path):
    compile_glue(tmp_path, "mod_offtok", "int offtok_module;\n")
    compile_glue(tmp_path, "mod_offtok_a", "extern int offtok_module; int offtok_b(void);\n"
                 "int offtok_a(void) { return offtok_b() + offtok_module; }\n")
    compile_glue(tmp_path, "mod_offtok_b", "extern int offtok_module; int offtok_a(void);\n"
                 "int offtok_b(void) { return offtok_module; }\n"
                 "int offtok_c(void) { return offtok_a(); }\n")
    res = subprocess.run([CALLS, str(tmp_path)], capture_output=True, text=True)
    assert res.returncode == 1, res.stdout + res.stderr
    assert res.stdout == "call circle: mod_offtok_a -> mod_offtok_b -> mod_offtok_a\n"


def test_no_test_file_defines_a_name_twice():
    """A second def of the same name hides the first: that test never runs and cannot fail."""
    import ast
    twice = []
    for sub in ("tests/integration", "tests/soak", "bench"):
        top = os.path.join(REPO, sub)
        for name in sorted(os.listdir(top)):
            if not name.endswith(".py"):
                continue
            with open(os.path.join(top, name)) as f:
                tree = ast.parse(f.read())
            seen = set()
            for node in tree.body:
                if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                    if node.name in seen:
                        twice.append(f"{sub}/{name}: {node.name}")
                    seen.add(node.name)
    assert not twice, twice
