"""Export generations to ONNX and OpenVINO IR (fp32, fp16, int8), each verified."""
