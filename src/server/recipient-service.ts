import { RecipientService } from "../../gen/herald/v1/recipient_pb.js";
import { deleteRecipientHandler } from "./handlers/recipients/delete.js";
import type { RecipientHandlerDeps } from "./handlers/recipients/deps.js";
import { eraseRecipientHandler } from "./handlers/recipients/erase.js";
import { getRecipientHandler } from "./handlers/recipients/get.js";
import { listRecipientsHandler } from "./handlers/recipients/list.js";
import { putRecipientHandler } from "./handlers/recipients/put.js";
import { deleteCategoryHandler, listCategoriesHandler, putCategoryHandler } from "./handlers/recipients/categories.js";
import { getPreferencesHandler, setPreferencesHandler } from "./handlers/recipients/preferences.js";
import { mount, type MountedService } from "./services.js";

/** herald.v1.RecipientService, wired from one handler per RPC; every call is scoped to the caller's tenant. */
export function recipientService(deps: RecipientHandlerDeps): MountedService {
  return mount(RecipientService, {
    putRecipient: putRecipientHandler(deps),
    getRecipient: getRecipientHandler(deps),
    deleteRecipient: deleteRecipientHandler(deps),
    listRecipients: listRecipientsHandler(deps),
    getPreferences: getPreferencesHandler(deps),
    setPreferences: setPreferencesHandler(deps),
    putCategory: putCategoryHandler(deps),
    listCategories: listCategoriesHandler(deps),
    deleteCategory: deleteCategoryHandler(deps),
    eraseRecipient: eraseRecipientHandler(deps),
  });
}
