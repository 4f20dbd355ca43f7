#!/usr/bin/env python3
"""The MTA snippets in contrib/, read by the MTAs' own tools.

  test_snippets.py postfix    main.cf and master.cf assembled from the
                              snippets: postconf must know every parameter
                              (no "unused parameter" warning) and
                              `postfix check` must pass, in a private config
                              directory (/etc/postfix is not touched).
  test_snippets.py sendmail   floodgate.mc expanded with sendmail-cf's m4
                              macros must give the filter line and the filter
                              list in sendmail.cf.

A snippet with a typo is worse than none: Postfix ignores an unknown name
with a warning nobody reads, and the milter is then silently not called.
Each check first proves it can fail (a misspelt parameter must warn).
Exit 0 pass, 1 fail, 77 skip (a tool is missing). FLOODGATE_SOURCE_DIR is
the source tree.
"""

import os
import re
import shutil
import subprocess
import sys
import tempfile

SKIP = 77
CONTRIB = os.path.join(os.environ["FLOODGATE_SOURCE_DIR"], "contrib")


class Failure(Exception):
    pass


def expect(condition, message):
    if not condition:
        raise Failure(message)


def read(path):
    with open(path) as f:
        return f.read()


def postconf(config_dir, *args):
    result = subprocess.run(["postconf", "-c", config_dir, *args], text=True, capture_output=True)
    expect(result.returncode == 0, f"postconf {' '.join(args)}: exit {result.returncode}\n{result.stderr}")
    return result


def parse_postconf(output):
    """'name = value' lines (an empty value has no space after '=')."""
    settings = {}
    for line in output.splitlines():
        match = re.fullmatch(r"(\S+) =(?: (.*))?", line)
        if match:
            settings[match.group(1)] = match.group(2) or ""
    return settings


def unused_parameter_warnings(config_dir):
    """postconf's complaints about names it does not know, from main.cf and master.cf -o."""
    warnings = []
    for flag in ["-n", "-P"]:
        stderr = postconf(config_dir, flag).stderr
        warnings += [line for line in stderr.splitlines() if "unused parameter" in line]
    return warnings


def make_postfix_config(directory, main_extra=""):
    """A private Postfix config: Debian's stock master.cf plus ours, a minimal main.cf plus ours."""
    os.chmod(directory, 0o755)  # postfix check: parents traversable by the postfix user
    queue = os.path.join(directory, "queue")
    data = os.path.join(directory, "data")
    os.mkdir(queue)
    os.mkdir(data)
    shutil.chown(data, "postfix")
    stock_master = "/usr/share/postfix/master.cf.dist"
    with open(os.path.join(directory, "master.cf"), "w") as f:
        f.write(read(stock_master) + "\n" + read(os.path.join(CONTRIB, "postfix/master.cf.snippet")))
    with open(os.path.join(directory, "main.cf"), "w") as f:
        f.write(f"compatibility_level = 3.6\n"
                f"queue_directory = {queue}\n"
                f"data_directory = {data}\n"
                # No syslog socket on test machines: postlogd to a file.
                f"maillog_file_prefixes = {directory}\n"
                f"maillog_file = {directory}/maillog\n"
                f"inet_interfaces = loopback-only\n"
                + read(os.path.join(CONTRIB, "postfix/main.cf.snippet"))
                + main_extra)


def check_postfix():
    for tool in ["postconf", "postfix"]:
        if not shutil.which(tool) and not os.path.exists(f"/usr/sbin/{tool}"):
            return skip(f"{tool} not found (contrib/setup.sh installs postfix)")
    os.environ["PATH"] += ":/usr/sbin"
    if not os.path.exists("/usr/share/postfix/master.cf.dist"):
        return skip("/usr/share/postfix/master.cf.dist missing (postfix package)")

    with tempfile.TemporaryDirectory(prefix="floodgate-pf-") as bad:
        # The check can fail: a misspelt name in main.cf and in a master.cf -o.
        make_postfix_config(bad, main_extra="smtpd_milterz = inet:127.0.0.1:8890\n")
        with open(os.path.join(bad, "master.cf"), "a") as f:
            f.write("127.0.0.1:10027 inet n - n - - smtpd\n  -o smtpd_milterz=\n")
        warnings = unused_parameter_warnings(bad)
        expect(any("main.cf: unused parameter: smtpd_milterz" in w for w in warnings)
               and any("master.cf: unused parameter: smtpd_milterz" in w for w in warnings),
               f"postconf did not flag misspelt parameters; got {warnings}")

    with tempfile.TemporaryDirectory(prefix="floodgate-pf-") as config:
        make_postfix_config(config)
        warnings = unused_parameter_warnings(config)
        expect(not warnings, "the snippets use names Postfix does not know:\n" + "\n".join(warnings))

        settings = parse_postconf(postconf(config, "-n").stdout)
        want = {
            "smtpd_milters": "inet:127.0.0.1:8890",
            "non_smtpd_milters": "inet:127.0.0.1:8890",
            "milter_default_action": "tempfail",
            "milter_protocol": "6",
        }
        for name, value in want.items():
            expect(settings.get(name) == value, f"main.cf {name}: got {settings.get(name)!r}, want {value!r}")
        for name in ["milter_connect_timeout", "milter_command_timeout", "milter_content_timeout"]:
            expect(re.fullmatch(r"\d+[smh]?", settings.get(name, "")),
                   f"main.cf {name}: got {settings.get(name)!r}, want a duration")

        release = {name.split("/")[-1]: value
                   for name, value in parse_postconf(postconf(config, "-P").stdout).items()
                   if name.startswith("127.0.0.1:10026/inet/")}
        want_release = {
            "smtpd_milters": "",
            "non_smtpd_milters": "",
            "receive_override_options": "no_milters",
            "mynetworks": "127.0.0.0/8",
            "smtpd_client_restrictions": "permit_mynetworks,reject",
            "smtpd_relay_restrictions": "permit_mynetworks,reject",
        }
        for name, value in want_release.items():
            expect(release.get(name) == value,
                   f"master.cf 127.0.0.1:10026 -o {name}: got {release.get(name)!r}, want {value!r}")

        # postfix check: master.cf syntax, the services' programs, the queue
        # directories (created here, in the private config only).
        check = subprocess.run(["postfix", "-c", config, "check"], text=True, capture_output=True)
        problems = [line for line in (check.stdout + check.stderr).splitlines()
                    if "warning" in line or "fatal" in line or "error" in line]
        expect(check.returncode == 0 and not problems,
               f"postfix check: exit {check.returncode}\n" + "\n".join(problems))
    print("PASS: Postfix knows every parameter of the snippets, postfix check passes")
    return 0


def check_sendmail():
    cf_m4 = "/usr/share/sendmail/cf/m4/cf.m4"
    if not shutil.which("m4") or not os.path.exists(cf_m4):
        return skip("m4 or sendmail-cf missing (contrib/setup.sh installs both)")
    snippet = os.path.join(CONTRIB, "sendmail/floodgate.mc")
    # The smallest sendmail.mc that includes ours where an admin would.
    mc = (f"include(`{cf_m4}')dnl\n"
          "OSTYPE(`linux')dnl\n"
          f"include(`{snippet}')dnl\n"
          "MAILER(`local')dnl\nMAILER(`smtp')dnl\n")
    result = subprocess.run(["m4"], input=mc, text=True, capture_output=True)
    expect(result.returncode == 0 and not result.stderr.strip(),
           f"m4 on floodgate.mc: exit {result.returncode}\n{result.stderr}")
    cf = result.stdout
    filter_line = "Xfloodgate, S=inet:8890@127.0.0.1, F=T, T=C:10s;S:30s;R:60s;E:5m"
    expect(filter_line in cf.splitlines(),
           f"sendmail.cf lacks the line {filter_line!r}; its X lines: "
           f"{[line for line in cf.splitlines() if line.startswith('X')]}")
    expect("O InputMailFilters=floodgate" in cf.splitlines(),
           f"sendmail.cf lacks 'O InputMailFilters=floodgate'; got "
           f"{[line for line in cf.splitlines() if 'InputMailFilters' in line]}")
    print("PASS: floodgate.mc expands to the filter definition and the filter list")
    return 0


def skip(why):
    print(f"SKIP: {why}")
    return SKIP


def main():
    checks = {"postfix": check_postfix, "sendmail": check_sendmail}
    if len(sys.argv) != 2 or sys.argv[1] not in checks:
        print(f"usage: {sys.argv[0]} {'|'.join(checks)}", file=sys.stderr)
        return 2
    try:
        return checks[sys.argv[1]]()
    except Failure as failure:
        print(f"FAIL: {failure}")
        return 1


if __name__ == "__main__":
    sys.exit(main())
