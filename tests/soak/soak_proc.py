"""What the soak reads of httpd's processes in /proc (tests/soak/soak.py): memory, descriptors by
kind, threads and environment."""
import collections
import os
import shutil
import subprocess
import time


def proc_status(pid):
    """VmRSS, RssAnon, RssFile, RssShmem in KiB (None if the process is gone)."""
    out = {}
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                name, _, value = line.partition(":")
                if name in ("VmRSS", "RssAnon", "RssFile", "RssShmem"):
                    out[name] = int(value.split()[0])
    except OSError:
        return None
    return out if "VmRSS" in out else None


def malloc_totals(httpd, pids):
    """pid -> (bytes glibc's malloc holds from the system, bytes of it in use), asked of each
    idle child with gdb (malloc_stats() prints to the child's stderr, httpd's error log)."""
    if not shutil.which("gdb"):
        return {}
    for pid in pids:
        try:
            subprocess.run(["gdb", "-p", str(pid), "-batch", "-ex", "call (void)malloc_stats()"],
                           capture_output=True, timeout=60)
        except subprocess.TimeoutExpired:
            return {}
    time.sleep(0.5)
    lines = httpd.error_log().splitlines()
    totals = []
    for i, line in enumerate(lines):
        if line.startswith("Total (incl. mmap):") and i + 2 < len(lines):
            try:
                totals.append((int(lines[i + 1].split("=")[1]), int(lines[i + 2].split("=")[1])))
            except (IndexError, ValueError):
                pass
    if len(totals) < len(pids):
        return {}
    return dict(zip(pids, totals[-len(pids):]))


ARENA_ALIGN = 64 << 20      # glibc maps its per-thread arenas at multiples of HEAP_MAX_SIZE


def anon_breakdown(pid):
    """The resident anonymous memory of pid in KiB by where it lies (/proc/<pid>/smaps):
    malloc's heaps (the brk heap and glibc's per-thread arenas), other anonymous mappings (APR's
    pool memory, which Debian's APR maps itself rather than through malloc, thread stacks, ...),
    and private copies of file pages (written data segments). None if the process is gone."""
    kinds = collections.Counter()
    kind = None
    try:
        with open(f"/proc/{pid}/smaps") as f:
            for line in f:
                head = line.split(None, 6)
                if "-" in head[0] and len(head) >= 5 and not head[0].endswith(":"):
                    start = int(head[0].split("-")[0], 16)
                    name = head[5].strip() if len(head) > 5 else ""
                    if name == "[heap]" or (not name and start % ARENA_ALIGN == 0):
                        kind = "malloc"
                    elif not name or name.startswith("[stack"):
                        kind = "other"
                    else:
                        kind = "file"
                elif head[0] == "Anonymous:" and kind:
                    kinds[kind] += int(head[1])
    except (OSError, ValueError, IndexError):
        return None
    return dict(kinds)


def environ_of(pid):
    """The environment a process started with ({} if it is gone)."""
    try:
        with open(f"/proc/{pid}/environ", "rb") as f:
            raw = f.read()
    except OSError:
        return {}
    return dict(item.decode(errors="replace").partition("=")[::2]
                for item in raw.split(b"\0") if b"=" in item)



def fd_count(pid):
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return None


def threads_of(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0
    return 0 if fields[0] == "Z" else int(fields[17])


def tcp_table(pid):
    """inode -> (local port, remote port, state) for the process's network namespace."""
    table = {}
    for name in ("tcp", "tcp6"):
        try:
            with open(f"/proc/{pid}/net/{name}") as f:
                next(f)
                for line in f:
                    parts = line.split()
                    local, remote, state, inode = parts[1], parts[2], parts[3], int(parts[9])
                    table[inode] = (int(local.rsplit(":", 1)[1], 16),
                                    int(remote.rsplit(":", 1)[1], 16), state)
        except OSError:
            pass
    return table


def unix_inodes(pid):
    """Inodes of the Unix sockets of the process's network namespace."""
    try:
        with open(f"/proc/{pid}/net/unix") as f:
            next(f)
            return {int(line.split()[6]) for line in f if len(line.split()) > 6}
    except OSError:
        return set()


def fd_breakdown(pid, ports):
    """Descriptors of pid by kind: client connections, connections to each issuer, to the
    proxied back end, listeners, Unix sockets (libcurl's socket pairs), other sockets, files,
    pipes, anon inodes."""
    kinds = collections.Counter()
    try:
        names = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return None
    tcp = unix = None
    for name in names:
        try:
            target = os.readlink(f"/proc/{pid}/fd/{name}")
        except OSError:
            continue
        if target.startswith("socket:["):
            if tcp is None:
                tcp = tcp_table(pid)
            entry = tcp.get(int(target[8:-1]))
            if entry is None:
                if unix is None:
                    unix = unix_inodes(pid)
                # a TCP socket no longer (or not yet) in the kernel's table: one that a reset
                # or a refused connect left in state CLOSE, until libcurl closes it
                kinds[PAIRS if int(target[8:-1]) in unix else OTHER_SOCKETS] += 1
                continue
            local, remote, state = entry
            if state == "0A":
                kinds["listening"] += 1
            elif local == ports["httpd"]:
                kinds["client conn"] += 1
            elif remote == ports["oidc"]:
                kinds["to oidc issuer"] += 1
            elif remote == ports["faulty"]:
                kinds["to faulty issuer"] += 1
            elif remote == ports["httpd"]:
                kinds["to proxied back end"] += 1
            else:
                kinds["tcp (other)"] += 1
        elif target.startswith("pipe:"):
            kinds["pipe"] += 1
        elif target.startswith("anon_inode:"):
            kinds[target] += 1
        else:
            kinds["file"] += 1
    return dict(kinds)


PAIRS = "socket (unix)"          # a libcurl handle keeps a socket pair (its wake-up pipe)
OTHER_SOCKETS = "socket (other)"
POOL_KINDS = (PAIRS, "to oidc issuer", "to faulty issuer", "to proxied back end", OTHER_SOCKETS)
