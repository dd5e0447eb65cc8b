# Test fixture for run_script: prints its arguments and an environment variable.
echo "args: $*"
echo "env: $TIDINGS_TEST_VALUE"
echo "to stderr" >&2
