import { Code, ConnectError, type HandlerContext } from "@connectrpc/connect";
import type {
  DeleteCategoryRequest,
  DeleteCategoryResponse,
  ListCategoriesResponse,
  PutCategoryRequest,
  PutCategoryResponse,
} from "../../../../gen/herald/v1/recipient_pb.js";
import { checkCategory } from "../../../domain/preferences.js";
import { validateCategoryName } from "../../../domain/validate.js";
import { echo } from "../../../domain/validate.js";
import { withStoreErrors } from "../../../store/errors.js";
import { deleteCategory, listCategories, putCategory } from "../../../store/preferences.js";
import { callInfo } from "../../call-info.js";
import type { RecipientHandlerDeps } from "./deps.js";
import { toCategoryMessage } from "./preferences-message.js";

/** PutCategory: the tenant's setting for one category, created or replaced. */
export function putCategoryHandler(deps: RecipientHandlerDeps) {
  return async (req: PutCategoryRequest, ctx: HandlerContext): Promise<Pick<PutCategoryResponse, "category" | "created">> => {
    const call = callInfo(ctx);
    const setting = checkCategory(req.category, "category");
    const { category, created } = await withStoreErrors(() => putCategory(deps.pool, call.tenant, setting));
    return { category: toCategoryMessage(category), created };
  };
}

/** ListCategories: every category the tenant set, by name. */
export function listCategoriesHandler(deps: RecipientHandlerDeps) {
  return async (_req: unknown, ctx: HandlerContext): Promise<Pick<ListCategoriesResponse, "categories">> => {
    const call = callInfo(ctx);
    const categories = await withStoreErrors(() => listCategories(deps.pool, call.tenant));
    return { categories: categories.map(toCategoryMessage) };
  };
}

/** DeleteCategory: removes the setting; NOT_FOUND when there is none. */
export function deleteCategoryHandler(deps: RecipientHandlerDeps) {
  return async (req: DeleteCategoryRequest, ctx: HandlerContext): Promise<Pick<DeleteCategoryResponse, "category">> => {
    const call = callInfo(ctx);
    validateCategoryName(req.category, "category");
    const removed = await withStoreErrors(() => deleteCategory(deps.pool, call.tenant, req.category));
    if (!removed) throw new ConnectError(`no category ${echo(req.category)}`, Code.NotFound);
    return { category: toCategoryMessage(removed) };
  };
}
