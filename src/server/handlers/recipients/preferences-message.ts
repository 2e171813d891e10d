import { create } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { CategorySchema, PreferencesSchema, type Category, type Preferences } from "../../../../gen/herald/v1/recipient_pb.js";
import type { CategorySetting, StoredPreferences } from "../../../domain/preferences.js";

/** Stored preferences as herald.v1.Preferences; none stored reads as empty preferences. */
export function toPreferencesMessage(userId: string, p: (StoredPreferences & { updatedAt?: Date }) | undefined): Preferences {
  return create(PreferencesSchema, {
    userId,
    optedOutChannels: p?.optedOutChannels ?? [],
    categories: (p?.categories ?? []).map((c) => ({ category: c.category, optedOutChannels: c.optedOutChannels, unsubscribed: c.unsubscribed })),
    ...(p?.quietHours ? { quietHours: p.quietHours } : {}),
    ...(p?.updatedAt ? { updateTime: timestampFromDate(p.updatedAt) } : {}),
  });
}

export function toCategoryMessage(c: CategorySetting & { updatedAt: Date }): Category {
  return create(CategorySchema, {
    category: c.category,
    required: c.required,
    defaultOptedOutChannels: c.defaultOptedOutChannels,
    description: c.description,
    updateTime: timestampFromDate(c.updatedAt),
  });
}
