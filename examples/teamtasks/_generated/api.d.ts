/* eslint-disable */
/**
 * Generated `api` utility.
 *
 * THIS CODE IS AUTOMATICALLY GENERATED.
 *
 * To regenerate, run `reactor codegen`.
 * @module
 */

import type { FunctionReference } from "convex/server";
import type { GenericId as Id } from "convex/values";

/**
 * A utility for referencing Convex functions in your app's public API.
 *
 * Usage:
 * ```js
 * const myFunctionReference = api.myModule.myFunction;
 * ```
 */
export declare const api: {
  notifications: {
    mark_read: FunctionReference<"mutation", "public", { id: Id<"notifications"> }, null>;
    unread: FunctionReference<"query", "public", {}, Array<{ _id: Id<"notifications">; _creationTime: number; owner: string; message: string; read: boolean; at: number }>>;
  };
  tasks: {
    add: FunctionReference<"mutation", "public", { title: string }, Id<"tasks">>;
    attach: FunctionReference<"mutation", "public", { id: Id<"tasks">; storageId: Id<"_storage"> }, null>;
    attachment_upload_url: FunctionReference<"mutation", "public", {}, string>;
    attachment_url: FunctionReference<"query", "public", { id: Id<"tasks"> }, string | null>;
    complete: FunctionReference<"mutation", "public", { id: Id<"tasks"> }, Id<"_scheduled_functions"> | null>;
    mine: FunctionReference<"query", "public", {}, Array<{ _id: Id<"tasks">; _creationTime: number; owner: string; title: string; done: boolean; attachment?: Id<"_storage"> }>>;
  };
};

/**
 * A utility for referencing Convex functions in your app's internal API.
 *
 * Usage:
 * ```js
 * const myFunctionReference = internal.myModule.myFunction;
 * ```
 */
export declare const internal: {
  notifications: {
    notify: FunctionReference<"mutation", "internal", { owner: string; message: string }, null>;
    purge_read: FunctionReference<"mutation", "internal", { batch: number; now?: number }, number>;
  };
  tasks: {
    add_for: FunctionReference<"mutation", "internal", { owner: string; title: string }, Id<"tasks">>;
  };
};

export declare const components: {};
