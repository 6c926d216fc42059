# SPDX-License-Identifier: GPL-3.0-or-later
# Debian packages with CPack (installer/bootstrap.sh package builds both):
# - llm-proxy: the desktop app (LLMPROXY_GUI=ON): binary, launcher entry, icon, AppStream
#   metadata, man page, bash completion, systemd units;
# - llm-proxy-headless: the same without Widgets, Charts or QtKeychain (LLMPROXY_GUI=OFF), so a
#   server installs no desktop stack.
# Both install /usr/bin/llm-proxy, so they conflict with each other.
# Dependencies come from dpkg-shlibdeps, plus the Qt plugins loaded at run time.
include(GNUInstallDirs)

find_program(LLMPROXY_HELP2MAN help2man REQUIRED)
find_program(LLMPROXY_GZIP gzip REQUIRED)

# The man page is made from `llm-proxy --help` and `--version`, so the two never disagree.
set(_man ${CMAKE_BINARY_DIR}/llm-proxy.1)
add_custom_command(
    OUTPUT ${_man}.gz
    COMMAND ${CMAKE_COMMAND} -E env --unset=XDG_DATA_HOME HOME=/nonexistent
            XDG_CONFIG_HOME=/nonexistent
            ${LLMPROXY_HELP2MAN} --no-info --section=1 --source=llm-proxy
            --name=${PROJECT_DESCRIPTION} --include=${PROJECT_SOURCE_DIR}/installer/llm-proxy.h2m
            --output=${_man} $<TARGET_FILE:llm-proxy>
    COMMAND ${LLMPROXY_GZIP} -9nf ${_man}
    DEPENDS llm-proxy ${PROJECT_SOURCE_DIR}/installer/llm-proxy.h2m
    COMMENT "Writing the man page from llm-proxy --help"
    VERBATIM)
# Who built the package: Debian's DEBFULLNAME and DEBEMAIL when set (as dch uses them).
if(DEFINED ENV{DEBEMAIL})
    set(_maintainer "$ENV{DEBFULLNAME} <$ENV{DEBEMAIL}>")
else()
    set(_maintainer "llm-proxy developers <llm-proxy@example.org>")
endif()
# Debian wants a changelog in every package's doc folder.
set(_changelog ${CMAKE_BINARY_DIR}/changelog.Debian)
string(TIMESTAMP _date "%a, %d %b %Y %H:%M:%S +0000" UTC) # honours SOURCE_DATE_EPOCH
file(WRITE ${_changelog}
     "llm-proxy (${PROJECT_VERSION}-1) unstable; urgency=medium\n\n"
     "  * Built from the llm-proxy sources; see the project's history for changes.\n\n"
     " -- ${_maintainer}  ${_date}\n")
add_custom_command(
    OUTPUT ${_changelog}.gz
    COMMAND ${LLMPROXY_GZIP} -9nkf ${_changelog}
    DEPENDS ${_changelog}
    VERBATIM)
add_custom_target(llmproxy_package_files ALL DEPENDS ${_man}.gz ${_changelog}.gz)

if(LLMPROXY_GUI)
    set(_package llm-proxy)
    set(_other llm-proxy-headless)
else()
    set(_package llm-proxy-headless)
    set(_other llm-proxy)
endif()
set(_doc ${CMAKE_INSTALL_DATADIR}/doc/${_package})
install(FILES ${_man}.gz DESTINATION ${CMAKE_INSTALL_MANDIR}/man1)
install(FILES ${PROJECT_SOURCE_DIR}/installer/copyright DESTINATION ${_doc})
install(FILES ${_changelog}.gz DESTINATION ${_doc})
install(FILES ${PROJECT_SOURCE_DIR}/installer/completion/llm-proxy
        DESTINATION ${CMAKE_INSTALL_DATADIR}/bash-completion/completions)
# Debian 12 keeps system units in /lib (usrmerge moves them later), user units in /usr/lib.
install(FILES ${PROJECT_SOURCE_DIR}/installer/systemd/llm-proxy.system.service
        DESTINATION /lib/systemd/system RENAME llm-proxy.service)
install(FILES ${PROJECT_SOURCE_DIR}/installer/systemd/llm-proxy.user.service
        DESTINATION lib/systemd/user RENAME llm-proxy.service)

set(CPACK_GENERATOR DEB)
set(CPACK_PACKAGE_NAME ${_package})
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_PACKAGE_VENDOR "llm-proxy developers")
set(CPACK_PACKAGE_CONTACT "${_maintainer}")
set(CPACK_DEBIAN_PACKAGE_RELEASE 1) # a Debian revision: not a native Debian package
set(CPACK_PACKAGING_INSTALL_PREFIX /usr)
set(CPACK_STRIP_FILES ON)
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_SECTION net)
set(CPACK_DEBIAN_PACKAGE_PRIORITY optional)
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
set(CPACK_DEBIAN_PACKAGE_GENERATE_SHLIBS OFF)
set(CPACK_DEBIAN_PACKAGE_CONFLICTS ${_other})
set(CPACK_DEBIAN_PACKAGE_REPLACES ${_other})
set(_about "llm-proxy is a local proxy for the OpenAI API. Applications point the base\n"
           "URL of their SDK at it and send ordinary requests. llm-proxy collects\n"
           "them into Batch API jobs, which cost half the price, polls the provider\n"
           "and answers each waiting client with its own result. Everything it does\n"
           "not batch it relays unchanged.\n.\n")
if(LLMPROXY_GUI)
    # Loaded at run time, so dpkg-shlibdeps cannot see them: the SQLite driver, the platform
    # plugins (xcb, Wayland) and the Secret Service library QtKeychain opens.
    set(CPACK_DEBIAN_PACKAGE_DEPENDS "libqt6sql6-sqlite, qt6-qpa-plugins, libsecret-1-0")
    set(CPACK_DEBIAN_PACKAGE_RECOMMENDS "qt6-wayland, gnome-keyring | kwalletmanager")
    set(CPACK_PACKAGE_DESCRIPTION_SUMMARY "proxy that sends OpenAI API calls through the Batch API")
    string(CONCAT CPACK_PACKAGE_DESCRIPTION ${_about}
           "This package has the desktop app (tray icon, dashboard, settings) and\n"
           "the headless mode, with systemd units for a user and a shared service.")
else()
    set(CPACK_DEBIAN_PACKAGE_DEPENDS "libqt6sql6-sqlite")
    set(CPACK_PACKAGE_DESCRIPTION_SUMMARY
        "proxy that sends OpenAI API calls through the Batch API (headless)")
    string(CONCAT CPACK_PACKAGE_DESCRIPTION ${_about}
           "This package is the headless build for servers, without the desktop\n"
           "libraries, with systemd units for a user and a shared service.")
endif()
include(CPack)
