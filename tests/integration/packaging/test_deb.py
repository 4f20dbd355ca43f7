#!/usr/bin/env python3
"""packaging.deb_installs_and_checks_config: the .deb, built and installed for real.

Configures a build of this source tree in a temporary directory (not the
build running the test: the point is what `cmake && cpack` makes from the
source), builds it, runs `cpack -G DEB`, checks the package's metadata and
contents, installs it with dpkg, checks what postinst did and that the
installed programs run, removes it (quarantined mail must stay), purges it
(everything must go).

It changes the machine: it installs and purges a package named floodgate
and leaves a system user `floodgate` behind (the package never removes it,
as Debian packages do not). So it refuses to run (exit 77, a ctest skip)
when it is not root, when dpkg is missing, or when anything of a floodgate
installation is already there that is not ours to clobber.

Environment (set by CMakeLists.txt): FLOODGATE_SOURCE_DIR, FLOODGATE_VERSION,
FLOODGATE_CMAKE, FLOODGATE_CPACK, FLOODGATE_CXX_COMPILER.
CMAKE_BUILD_PARALLEL_LEVEL, when set, replaces the default of 2 build jobs.
"""

import contextlib
import fcntl
import grp
import os
import pwd
import shutil
import stat
import subprocess
import sys
import tempfile
import time

SKIP = 77

EXPECTED_FILES = [
    "/usr/sbin/floodgate",
    "/usr/bin/floodgatectl",
    "/etc/floodgate/floodgate.yaml",
    "/lib/systemd/system/floodgate.service",
    "/usr/share/doc/floodgate/README.md",
    "/usr/share/doc/floodgate/examples/postfix/main.cf.snippet",
    "/usr/share/doc/floodgate/examples/postfix/master.cf.snippet",
    "/usr/share/doc/floodgate/examples/sendmail/floodgate.mc",
    "/usr/share/doc/floodgate/examples/rsyslog/30-floodgate.conf",
    "/usr/share/doc/floodgate/examples/logrotate/floodgate",
]
SPOOL = "/var/spool/floodgate"
QUARANTINE = SPOOL + "/quarantine"
# Installing the package must not change the admin's logging: nothing under
# these directories may come from it.
FORBIDDEN_PREFIXES = ["/etc/rsyslog.d/", "/etc/logrotate.d/"]

LOCK_FILE = "/tmp/floodgate-packaging-test.lock"


class Failure(Exception):
    pass


def skip(why):
    print(f"SKIP: {why}")
    sys.exit(SKIP)


def run(argv, check=True, **kwargs):
    """Runs argv, echoing it; returns the CompletedProcess (text)."""
    print("+ " + " ".join(argv), flush=True)
    result = subprocess.run(argv, text=True, capture_output=True, **kwargs)
    if check and result.returncode != 0:
        raise Failure(f"{' '.join(argv)}: exit {result.returncode}\n"
                      f"--- stdout\n{result.stdout}\n--- stderr\n{result.stderr}")
    return result


def expect(condition, message):
    if not condition:
        raise Failure(message)


def package_status():
    """dpkg's status of floodgate ('' when dpkg never heard of it)."""
    result = subprocess.run(["dpkg-query", "-W", "-f=${Status}", "floodgate"],
                            text=True, capture_output=True)
    return result.stdout.strip() if result.returncode == 0 else ""


def dpkg(*args):
    """dpkg with the lock waited for: apt may run beside us on a shared machine."""
    deadline = time.monotonic() + 120
    while True:
        result = run(["dpkg", *args], check=False)
        locked = "lock" in result.stderr and "locked" in result.stderr
        if result.returncode == 0 or not locked or time.monotonic() > deadline:
            break
        time.sleep(2)
    if result.returncode != 0:
        raise Failure(f"dpkg {' '.join(args)}: exit {result.returncode}\n"
                      f"--- stdout\n{result.stdout}\n--- stderr\n{result.stderr}")
    return result


def refuse_to_clobber():
    status = package_status()
    if status and status != "unknown ok not-installed":
        skip(f"a floodgate package is already on this machine (dpkg status '{status}'); "
             "this test installs and purges its own and will not touch that one")
    for path in EXPECTED_FILES:
        if os.path.lexists(path):
            skip(f"{path} exists and belongs to no floodgate package (cmake --install?); "
                 "installing the .deb would overwrite it")
    if os.path.lexists(SPOOL):
        skip(f"{SPOOL} exists; purging the package would delete it and any quarantined mail in it")


def build_package(workdir):
    source = os.environ["FLOODGATE_SOURCE_DIR"]
    build = os.path.join(workdir, "build")
    configure = [os.environ["FLOODGATE_CMAKE"], "-S", source, "-B", build,
                 "-DFLOODGATE_TESTS=OFF", "-DCMAKE_INSTALL_PREFIX=/usr"]
    if os.environ.get("FLOODGATE_CXX_COMPILER"):
        configure.append("-DCMAKE_CXX_COMPILER=" + os.environ["FLOODGATE_CXX_COMPILER"])
    run(configure)
    build_command = [os.environ["FLOODGATE_CMAKE"], "--build", build]
    if not os.environ.get("CMAKE_BUILD_PARALLEL_LEVEL"):
        build_command += ["-j", "2"]
    # With the tests off, `all` is the libraries and the two programs; built
    # here, in parallel, because cpack's own pre-install build runs make
    # without -j.
    run(build_command)
    packed = run([os.environ["FLOODGATE_CPACK"], "-G", "DEB"], cwd=build, check=False)
    if packed.returncode != 0:
        # cpack's own build output is in a log file that goes with the
        # temporary directory: show its end.
        logs = ""
        for root, _, files in os.walk(os.path.join(build, "_CPack_Packages")):
            for name in files:
                if name.endswith(".log"):
                    with open(os.path.join(root, name), errors="replace") as f:
                        logs += f"--- {name} (end)\n" + "".join(f.readlines()[-40:])
        raise Failure(f"cpack -G DEB: exit {packed.returncode}\n{packed.stdout}\n{packed.stderr}\n{logs}")
    debs = [name for name in os.listdir(build) if name.endswith(".deb")]
    expect(len(debs) == 1, f"cpack made {debs}, want one .deb")
    return os.path.join(build, debs[0])


def check_package_file(deb):
    fields = {}
    for field in ["Package", "Version", "Depends", "Recommends", "Suggests", "Section"]:
        fields[field] = run(["dpkg-deb", "-f", deb, field]).stdout.strip()
    expect(fields["Package"] == "floodgate", f"Package: got {fields['Package']!r}, want 'floodgate'")
    version = os.environ["FLOODGATE_VERSION"]
    expect(fields["Version"] == version, f"Version: got {fields['Version']!r}, want {version!r}")
    depends = fields["Depends"]
    # dpkg-shlibdeps ran: the libraries the programs link are there, not just
    # what we listed by hand.
    for wanted in ["adduser", "libc6", "libmilter", "libhiredis", "libyaml-cpp"]:
        expect(wanted in depends, f"Depends: {wanted} missing from {depends!r}")
    expect(fields["Recommends"] == "postfix | mail-transport-agent",
           f"Recommends: got {fields['Recommends']!r}")
    expect(fields["Suggests"] == "redis-server", f"Suggests: got {fields['Suggests']!r}")

    listing = run(["dpkg-deb", "-c", deb]).stdout.splitlines()
    # "drwx------ root/root 0 2026-11-27 16:36 ./var/spool/floodgate/quarantine/"
    modes = {}
    for line in listing:
        parts = line.split()
        modes[parts[-1].lstrip(".").rstrip("/")] = parts[0]
    for path in EXPECTED_FILES:
        expect(path in modes, f"dpkg-deb -c: {path} missing; got {sorted(modes)}")
    expect(modes.get(QUARANTINE) == "drwx------",
           f"{QUARANTINE} in the package: got {modes.get(QUARANTINE)}, want drwx------")
    expect(modes["/usr/sbin/floodgate"].startswith("-rwxr-xr-x"),
           f"/usr/sbin/floodgate mode {modes['/usr/sbin/floodgate']}")
    for path in modes:
        for prefix in FORBIDDEN_PREFIXES:
            expect(not path.startswith(prefix), f"the package ships {path}: it would change the admin's logging")

    with tempfile.TemporaryDirectory() as control:
        run(["dpkg-deb", "-e", deb, control])
        with open(os.path.join(control, "conffiles")) as f:
            conffiles = f.read().split()
        expect(conffiles == ["/etc/floodgate/floodgate.yaml"], f"conffiles: got {conffiles}")
        for script in ["postinst", "prerm", "postrm"]:
            mode = os.stat(os.path.join(control, script)).st_mode
            expect(mode & stat.S_IXUSR, f"{script} is not executable in the control archive")


def check_installed():
    try:
        user = pwd.getpwnam("floodgate")
    except KeyError:
        raise Failure("postinst did not create the user floodgate")
    expect(user.pw_dir == SPOOL, f"floodgate's home: got {user.pw_dir}, want {SPOOL}")
    expect(user.pw_uid < 1000, f"floodgate is not a system user (uid {user.pw_uid})")
    group = grp.getgrnam("floodgate")
    expect(user.pw_gid == group.gr_gid, "floodgate's primary group is not floodgate")

    spool = os.stat(QUARANTINE)
    expect(stat.S_IMODE(spool.st_mode) == 0o700,
           f"{QUARANTINE}: mode got {oct(stat.S_IMODE(spool.st_mode))}, want 0o700")
    expect(spool.st_uid == user.pw_uid and spool.st_gid == group.gr_gid,
           f"{QUARANTINE}: owner got {spool.st_uid}:{spool.st_gid}, want floodgate:floodgate")
    for path in EXPECTED_FILES:
        expect(os.path.exists(path), f"{path} not installed")

    checked = run(["/usr/sbin/floodgate", "--config", "/etc/floodgate/floodgate.yaml", "--check-config"])
    print(checked.stdout.strip())
    helped = run(["/usr/bin/floodgatectl", "--help"])
    expect("release" in helped.stdout, f"floodgatectl --help does not mention release:\n{helped.stdout}")

    analyze = shutil.which("systemd-analyze")
    if analyze:
        # Catches unknown directives and bad values; with the binary now in
        # place nothing else should be reported.
        verified = run([analyze, "verify", "/lib/systemd/system/floodgate.service"], check=False)
        report = (verified.stdout + verified.stderr).strip()
        expect(verified.returncode == 0 and "floodgate.service" not in report,
               f"systemd-analyze verify: exit {verified.returncode}\n{report}")
    else:
        print("systemd-analyze not found: the unit file was not verified")


def check_removed_keeps_quarantine(marker):
    for path in ["/usr/sbin/floodgate", "/usr/bin/floodgatectl", "/lib/systemd/system/floodgate.service"]:
        expect(not os.path.exists(path), f"{path} still there after dpkg --remove")
    expect(os.path.exists(marker), f"dpkg --remove deleted quarantined mail ({marker})")
    expect(os.path.exists("/etc/floodgate/floodgate.yaml"),
           "dpkg --remove deleted the conffile (only purge should)")


def check_purged():
    for path in EXPECTED_FILES + [SPOOL, "/etc/floodgate", "/usr/share/doc/floodgate"]:
        expect(not os.path.lexists(path), f"{path} still there after dpkg --purge")
    status = package_status()
    expect(status in ("", "unknown ok not-installed"), f"dpkg status after purge: {status!r}")


@contextlib.contextmanager
def timed(what, timings):
    start = time.monotonic()
    yield
    timings.append((what, time.monotonic() - start))


def main():
    if os.geteuid() != 0:
        skip("needs root (dpkg -i, a system user)")
    for tool in ["dpkg", "dpkg-deb", "dpkg-query", "dpkg-shlibdeps"]:
        if not shutil.which(tool):
            skip(f"{tool} not found (contrib/setup.sh installs dpkg-dev)")

    timings = []
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="floodgate-deb-") as workdir:
        with timed("configure, build, cpack", timings):
            deb = build_package(workdir)
        with timed("check the .deb", timings):
            check_package_file(deb)

        # One run at a time on this machine: two would install over each other.
        with open(LOCK_FILE, "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            refuse_to_clobber()
            installed = False
            try:
                with timed("dpkg -i and checks", timings):
                    installed = True
                    result = dpkg("-i", deb)
                    print(result.stdout.strip())
                    expect("not started" in result.stdout,
                           "postinst did not say the daemon was left unstarted")
                    check_installed()
                with timed("dpkg --remove, --purge", timings):
                    marker = os.path.join(QUARANTINE, "packaging-test-entry")
                    with open(marker, "w") as f:
                        f.write("stands for a quarantined message\n")
                    removed = dpkg("--remove", "floodgate")
                    print(removed.stdout.strip(), removed.stderr.strip(), sep="\n")
                    expect("quarantined mail kept" in removed.stdout,
                           "postrm remove did not say the quarantine was kept")
                    check_removed_keeps_quarantine(marker)
                    purged = dpkg("--purge", "floodgate")
                    print(purged.stdout.strip(), purged.stderr.strip(), sep="\n")
                    installed = False
                    check_purged()
            finally:
                if installed and package_status() not in ("", "unknown ok not-installed"):
                    subprocess.run(["dpkg", "--purge", "floodgate"])

    for what, seconds in timings:
        print(f"time: {what}: {seconds:.1f}s")
    print(f"time: total {time.monotonic() - started:.1f}s")
    print("PASS: the .deb builds, installs, runs, removes and purges as it should")


if __name__ == "__main__":
    try:
        main()
    except Failure as failure:
        print(f"FAIL: {failure}")
        sys.exit(1)
