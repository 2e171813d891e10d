import type { DescService } from "@bufbuild/protobuf";
import type { ServiceImpl } from "@connectrpc/connect";

/**
 * One service implementation in connect-es form. The same object is mounted
 * on the Connect router (HTTP listener) and on grpc-js (gRPC listener).
 */
export interface MountedService<S extends DescService = DescService> {
  service: S;
  impl: Partial<ServiceImpl<S>>;
}

/** Keeps the pairing type-checked at the call site, then erases it for the list. */
export function mount<S extends DescService>(service: S, impl: Partial<ServiceImpl<S>>): MountedService {
  return { service, impl };
}
