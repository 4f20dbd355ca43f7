# Install layout and the Debian package (CPack DEB).
#
# `cmake --install` and `cpack -G DEB` lay out the same tree:
#   /usr/sbin/floodgate                      the milter daemon
#   /usr/bin/floodgatectl                    the operators' CLI
#   /etc/floodgate/floodgate.yaml            the shipped policy (a conffile)
#   /lib/systemd/system/floodgate.service    the systemd unit
#   /var/spool/floodgate/quarantine          the quarantine spool (0700)
#   /usr/share/doc/floodgate/                README, ARCHITECTURE, examples/
#
# The daemon's compiled-in default is /etc/floodgate/floodgate.yaml, the
# shipped policy's spool is /var/spool/floodgate/quarantine and the unit runs
# /usr/sbin/floodgate, so the layout only hangs together with the /usr
# prefix: it is this project's default, and the .deb refuses any other
# (checked when cpack runs, below).
#
# Included once from the top-level CMakeLists.txt, after the targets exist.

if(CMAKE_INSTALL_PREFIX_INITIALIZED_TO_DEFAULT)
  set(CMAKE_INSTALL_PREFIX "/usr" CACHE PATH
    "Install prefix (/usr: the paths the daemon and the unit expect)" FORCE)
endif()
# After the prefix is settled: with /usr, GNUInstallDirs maps sysconfdir to
# /etc and localstatedir to /var (the FULL_ variables), as Debian wants.
include(GNUInstallDirs)

# Debian 12 packages still ship units in /lib/systemd/system (merged /usr or
# not); other prefixes keep the unit under their own tree.
if(CMAKE_INSTALL_PREFIX STREQUAL "/usr")
  set(_floodgate_unit_dir_default "/lib/systemd/system")
else()
  set(_floodgate_unit_dir_default "${CMAKE_INSTALL_PREFIX}/lib/systemd/system")
endif()
set(FLOODGATE_SYSTEMD_UNIT_DIR "${_floodgate_unit_dir_default}" CACHE PATH
  "Where the systemd unit floodgate.service is installed")

set(FLOODGATE_CONFIG_DIR "${CMAKE_INSTALL_FULL_SYSCONFDIR}/floodgate")
set(FLOODGATE_SPOOL_DIR "${CMAKE_INSTALL_FULL_LOCALSTATEDIR}/spool/floodgate")
set(FLOODGATE_DOC_DIR "${CMAKE_INSTALL_FULL_DATAROOTDIR}/doc/floodgate")

install(TARGETS floodgate RUNTIME DESTINATION ${CMAKE_INSTALL_SBINDIR})
install(TARGETS floodgatectl RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})

# 0644: the shipped file holds no secret (a Redis password goes in
# redis.password_file, which the admin creates 0640 root:floodgate), and the
# daemon, running as floodgate, must read it. floodgate refuses a
# world-writable one.
install(FILES ${PROJECT_SOURCE_DIR}/conf/floodgate.yaml
  DESTINATION ${FLOODGATE_CONFIG_DIR}
  PERMISSIONS OWNER_READ OWNER_WRITE GROUP_READ WORLD_READ)

install(FILES ${PROJECT_SOURCE_DIR}/contrib/systemd/floodgate.service
  DESTINATION ${FLOODGATE_SYSTEMD_UNIT_DIR}
  PERMISSIONS OWNER_READ OWNER_WRITE GROUP_READ WORLD_READ)

# Quarantined mail is mail: the spool is private to the daemon. The package
# can only make it root's here; postinst gives it to floodgate:floodgate
# (the user does not exist before postinst runs).
install(DIRECTORY DESTINATION ${FLOODGATE_SPOOL_DIR}/quarantine
  DIRECTORY_PERMISSIONS OWNER_READ OWNER_WRITE OWNER_EXECUTE)

install(FILES ${PROJECT_SOURCE_DIR}/README.md ${PROJECT_SOURCE_DIR}/ARCHITECTURE.md
  DESTINATION ${FLOODGATE_DOC_DIR})
# MTA snippets and logging examples are documentation, not configuration:
# installing the package changes neither Postfix, Sendmail, rsyslog nor
# logrotate; the admin copies what they want from here.
install(DIRECTORY
    ${PROJECT_SOURCE_DIR}/contrib/postfix
    ${PROJECT_SOURCE_DIR}/contrib/sendmail
    ${PROJECT_SOURCE_DIR}/contrib/rsyslog
    ${PROJECT_SOURCE_DIR}/contrib/logrotate
  DESTINATION ${FLOODGATE_DOC_DIR}/examples
  FILE_PERMISSIONS OWNER_READ OWNER_WRITE GROUP_READ WORLD_READ)

# ---- CPack: the .deb ----------------------------------------------------

set(CPACK_PACKAGE_NAME "floodgate")
set(CPACK_PACKAGE_VERSION "${PROJECT_VERSION}")
set(CPACK_PACKAGE_VENDOR "Floodgate")
# The Maintainer field is required; whoever builds packages for a site sets
# their own address.
set(FLOODGATE_PACKAGE_MAINTAINER "Floodgate maintainers <root@localhost>" CACHE STRING
  "Maintainer field of the .deb")
set(CPACK_PACKAGE_CONTACT "${FLOODGATE_PACKAGE_MAINTAINER}")
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY
  "milter that contains outbound mail bursts per source")
set(CPACK_PACKAGE_DESCRIPTION
  "Floodgate is a mail filter (milter) for outbound relays. Postfix or
Sendmail calls it on every outbound message; it scores the message by its
recipients, its source and its content, keeps the counters in Redis, and
quarantines, tempfails or rejects a burst for the offending source only.
floodgatectl lists, releases and deletes quarantined mail and freezes and
unfreezes sources.")
set(CPACK_GENERATOR "DEB")
set(CPACK_PACKAGING_INSTALL_PREFIX "/usr")
# Debian strips binaries (dh_strip); a RelWithDebInfo build would otherwise
# ship its debug information.
set(CPACK_STRIP_FILES ON)

set(CPACK_DEBIAN_PACKAGE_NAME "floodgate")
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)  # floodgate_0.1.0_amd64.deb
set(CPACK_DEBIAN_PACKAGE_SECTION "mail")
set(CPACK_DEBIAN_PACKAGE_PRIORITY "optional")
# Library dependencies come from dpkg-shlibdeps (dpkg-dev) on the built
# binaries; adduser is what postinst needs on top.
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
set(CPACK_DEBIAN_PACKAGE_DEPENDS "adduser")
set(CPACK_DEBIAN_PACKAGE_RECOMMENDS "postfix | mail-transport-agent")
# Without Redis every instance counts alone (redis.on_failure: local).
set(CPACK_DEBIAN_PACKAGE_SUGGESTS "redis-server")
set(CPACK_DEBIAN_PACKAGE_CONTROL_EXTRA
  ${PROJECT_SOURCE_DIR}/contrib/debian/conffiles
  ${PROJECT_SOURCE_DIR}/contrib/debian/postinst
  ${PROJECT_SOURCE_DIR}/contrib/debian/prerm
  ${PROJECT_SOURCE_DIR}/contrib/debian/postrm)
# Maintainer scripts must be executable in the control archive whatever mode
# the checkout gave them.
set(CPACK_DEBIAN_PACKAGE_CONTROL_STRICT_PERMISSION ON)

# Checked when cpack runs, not at configure time: a build configured for
# another prefix can still be installed with `cmake --install`.
file(WRITE ${PROJECT_BINARY_DIR}/FloodgatePackagingChecks.cmake
"if(CPACK_GENERATOR STREQUAL \"DEB\" AND NOT \"${CMAKE_INSTALL_PREFIX}\" STREQUAL \"/usr\")
  message(FATAL_ERROR \"floodgate: the .deb needs a build configured with -DCMAKE_INSTALL_PREFIX=/usr \"
    \"(this one has ${CMAKE_INSTALL_PREFIX}); /etc/floodgate, /var/spool/floodgate and the unit's \"
    \"/usr/sbin/floodgate assume it\")
endif()
")
set(CPACK_PROJECT_CONFIG_FILE ${PROJECT_BINARY_DIR}/FloodgatePackagingChecks.cmake)

include(CPack)
