import { StorageFaultError } from "../errors.js";
import type { StorageFault, Store } from "./Store.js";

/**
 * The store as the server uses it: an error of its database that stands for a storage fault
 * (a full disk, an I/O error, a read-only or corrupt file) leaves every operation as a
 * StorageFaultError, which the API answers UNAVAILABLE with the fault's message, and is
 * reported to `onFault` (health turns NOT_SERVING). Other errors pass through unchanged.
 */
export function guardStore(store: Store, onFault: (fault: StorageFault) => void): Store {
  const translate = (error: unknown): never => {
    if (error instanceof StorageFaultError) {
      onFault(error.fault);
      throw error;
    }
    const fault = store.describeFault(error);
    if (!fault) throw error;
    onFault(fault);
    throw new StorageFaultError(fault, { cause: error });
  };
  // One wrapper per operation, made on first use: `apply` runs thousands of times a second.
  const wrapped = new Map<PropertyKey, unknown>();
  return new Proxy(store, {
    get(target, property) {
      const value: unknown = Reflect.get(target, property);
      if (typeof value !== "function" || property === "describeFault" || property === "constructor") return value;
      let wrapper = wrapped.get(property);
      if (!wrapper) {
        const operation = value as (...args: unknown[]) => unknown;
        wrapper = (...args: unknown[]) => {
          let result: unknown;
          try {
            result = operation.apply(target, args);
          } catch (error) {
            translate(error);
          }
          return result instanceof Promise ? result.catch(translate) : result;
        };
        wrapped.set(property, wrapper);
      }
      return wrapper;
    },
  });
}
