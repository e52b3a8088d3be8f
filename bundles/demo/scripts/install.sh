#!/bin/sh
# Runs on the first master once the files are in place (the install issue wires it up).
set -eu
echo "installing demo into namespace ${APP_NAMESPACE:-demo}"
