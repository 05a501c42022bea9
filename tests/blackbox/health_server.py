"""A real gRPC health server (grpcio's grpc.health.v1 servicer) for tests/blackbox_compat.rs.

Usage: grpc_health.py PORT [CERT KEY]. Serves "" and "service1" SERVING, "down" NOT_SERVING;
over TLS when a certificate and key are given. Prints "ready" once it listens.
"""
import sys
from concurrent import futures

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

port = int(sys.argv[1])
server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
servicer = health.HealthServicer()
servicer.set("", health_pb2.HealthCheckResponse.SERVING)
servicer.set("service1", health_pb2.HealthCheckResponse.SERVING)
servicer.set("down", health_pb2.HealthCheckResponse.NOT_SERVING)
health_pb2_grpc.add_HealthServicer_to_server(servicer, server)
if len(sys.argv) > 3:
    with open(sys.argv[2], "rb") as c, open(sys.argv[3], "rb") as k:
        creds = grpc.ssl_server_credentials([(k.read(), c.read())])
    server.add_secure_port(f"127.0.0.1:{port}", creds)
else:
    server.add_insecure_port(f"127.0.0.1:{port}")
server.start()
print("ready", flush=True)
server.wait_for_termination()
