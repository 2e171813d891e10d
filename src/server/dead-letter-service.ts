import { DeadLetterService } from "../../gen/herald/v1/dead_letter_pb.js";
import type { DeadLetterStore } from "../store/dead-letters.js";
import { listDeadLettersHandler } from "./handlers/dead-letters/list.js";
import { getDeadLetterHandler } from "./handlers/dead-letters/get.js";
import { redriveDeadLettersHandler } from "./handlers/dead-letters/redrive.js";
import { mount, type MountedService } from "./services.js";
import { type Clock } from "../clock.js";

export interface DeadLetterServiceDeps {
  store: DeadLetterStore;
  clock: Clock;
}

/** herald.v1.DeadLetterService, wired from one handler per RPC; every call is scoped to the caller's tenant. */
export function deadLetterService(deps: DeadLetterServiceDeps): MountedService {
  return mount(DeadLetterService, {
    listDeadLetters: listDeadLettersHandler(deps),
    getDeadLetter: getDeadLetterHandler(deps),
    redriveDeadLetters: redriveDeadLettersHandler(deps),
  });
}
