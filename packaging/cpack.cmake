# The Debian package: `cpack -G DEB` in the build folder gives parkway_<version>_<arch>.deb (docs/install.md).
# Installed to /usr; /etc/parkway and the unit go where install_system_files.cmake puts them for prefix /usr.
set(CPACK_GENERATOR DEB)
set(CPACK_PACKAGE_NAME parkway)
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_PACKAGE_VENDOR "Parkway")
set(CPACK_PACKAGE_CONTACT "Parkway maintainers <dev@parkway>")
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY "SIP call-park server and stateful proxy with loadable modules")
set(CPACK_PACKAGE_DESCRIPTION
    "Parkway parks, retrieves and recalls SIP calls (REFER, feature codes, park lots and groups), shows parked\n\
calls to phones (BLF, park-info) and runs as an application server behind Kamailio or OpenSIPS. The package\n\
holds the daemon (systemd unit parkway.service), parkctl, the registrar, router and callpark modules, the module\n\
SDK headers with a CMake package and pkg-config files, and the embeddable park engine (static library).")
# Installed with an absolute DESTDIR so the files outside /usr (/etc/parkway, /lib/systemd/system) are staged.
set(CPACK_SET_DESTDIR ON)
set(CPACK_INSTALL_PREFIX /usr)
set(CPACK_PACKAGING_INSTALL_PREFIX /usr)
set(CPACK_STRIP_FILES ON)
set(CPACK_PARKWAY_STRIP ${CMAKE_STRIP})
set(CPACK_PRE_BUILD_SCRIPTS ${CMAKE_CURRENT_SOURCE_DIR}/strip_archives.cmake)
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_SECTION net)
set(CPACK_DEBIAN_PACKAGE_PRIORITY optional)
# Depends: from dpkg-shlibdeps over the daemon, parkctl and the modules.
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
# What building a module or embedding the engine against the installed files needs (ParkwayConfig.cmake).
set(CPACK_DEBIAN_PACKAGE_SUGGESTS "cmake, pkg-config, g++, libsqlite3-dev, libfmt-dev, libre2-dev, libpq-dev")
# conffiles (/etc/parkway), and maintainer scripts that enable and start parkway.service as debhelper would.
set(CPACK_DEBIAN_PACKAGE_CONTROL_EXTRA ${CMAKE_CURRENT_SOURCE_DIR}/debian/conffiles
    ${CMAKE_CURRENT_SOURCE_DIR}/debian/postinst ${CMAKE_CURRENT_SOURCE_DIR}/debian/prerm
    ${CMAKE_CURRENT_SOURCE_DIR}/debian/postrm)
set(CPACK_DEBIAN_PACKAGE_CONTROL_STRICT_PERMISSION TRUE)
include(CPack)
