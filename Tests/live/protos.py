"""Protobuf message classes straight from a .proto file, through protoc's descriptor set: no
generated code, so no mismatch between the protoc that generates and the runtime that reads."""

import shutil
import subprocess

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory


def message_class(proto, name, folder):
    """The class of message `name` (fully qualified) defined in the file `proto` (a Path)."""
    if shutil.which("protoc") is None:
        raise RuntimeError("protoc is not installed: run scripts/install-test-deps")
    out = folder / (proto.stem + ".pb")
    subprocess.run(["protoc", f"--proto_path={proto.parent}", f"--descriptor_set_out={out}", proto.name], check=True)
    pool = descriptor_pool.DescriptorPool()
    for file in descriptor_pb2.FileDescriptorSet.FromString(out.read_bytes()).file:
        pool.Add(file)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName(name))
