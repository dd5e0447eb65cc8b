# Test fixture for run_script: prints its pid, then hangs.
echo "pid $$"
exec sleep 300
