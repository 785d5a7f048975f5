"""Generated gRPC/protobuf stubs of fednode.v1 (python -m node.peer.regen)."""
