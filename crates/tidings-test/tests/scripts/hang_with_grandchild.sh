# Test fixture for run_script: a grandchild keeps the output pipes open.
echo "started"
sleep 300 &
wait
