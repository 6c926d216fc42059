# SPDX-License-Identifier: GPL-3.0-or-later
# Run by CTest in place of the end-to-end tests when they cannot run: fails with the reason.
message(FATAL_ERROR "e2e_node_sdk cannot run: ${E2E_MESSAGE}")
