# Test fixture for run_script: writes to both streams, then fails.
echo "partial progress"
echo "something broke" >&2
exit 3
