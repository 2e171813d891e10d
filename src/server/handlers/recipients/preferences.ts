import { Code, ConnectError, type HandlerContext } from "@connectrpc/connect";
import type {
  GetPreferencesRequest,
  GetPreferencesResponse,
  SetPreferencesRequest,
  SetPreferencesResponse,
} from "../../../../gen/herald/v1/recipient_pb.js";
import { checkPreferences } from "../../../domain/preferences.js";
import { echo, invalidArgument, validateUserId } from "../../../domain/validate.js";
import { withStoreErrors } from "../../../store/errors.js";
import { getPreferences, setPreferences } from "../../../store/preferences.js";
import { getRecipient } from "../../../store/recipients.js";
import { callInfo } from "../../call-info.js";
import type { RecipientHandlerDeps } from "./deps.js";
import { toPreferencesMessage } from "./preferences-message.js";

const noProfile = (userId: string) => new ConnectError(`no recipient ${echo(userId)}: PutRecipient first`, Code.NotFound);

/** GetPreferences: the recipient's preferences, empty when none were set; NOT_FOUND without a profile. */
export function getPreferencesHandler(deps: RecipientHandlerDeps) {
  return async (req: GetPreferencesRequest, ctx: HandlerContext): Promise<Pick<GetPreferencesResponse, "preferences">> => {
    const call = callInfo(ctx);
    validateUserId(req.userId, "user_id");
    const found = await withStoreErrors(() => getPreferences(deps.pool, call.tenant, req.userId));
    if (!found) throw noProfile(req.userId);
    return { preferences: toPreferencesMessage(req.userId, found.preferences) };
  };
}

/** SetPreferences: replaces them whole; quiet hours need the profile's time zone. NOT_FOUND without a profile. */
export function setPreferencesHandler(deps: RecipientHandlerDeps) {
  return async (req: SetPreferencesRequest, ctx: HandlerContext): Promise<Pick<SetPreferencesResponse, "preferences">> => {
    const call = callInfo(ctx);
    if (!req.preferences) throw invalidArgument("preferences", "is required");
    const userId = req.preferences.userId;
    validateUserId(userId, "preferences.user_id");
    const profile = await withStoreErrors(() => getRecipient(deps.pool, call.tenant, userId));
    if (!profile) throw noProfile(userId);
    const checked = checkPreferences(req.preferences, "preferences", profile.timeZone);
    // The profile may be deleted meanwhile: then nothing is stored (the insert reads it again).
    const stored = await withStoreErrors(() => setPreferences(deps.pool, call.tenant, userId, checked));
    if (!stored) throw noProfile(userId);
    return { preferences: toPreferencesMessage(userId, stored) };
  };
}
