// A small React frontend for examples/teamtasks, written as for Convex: it imports the files
// `reactor codegen` writes into convex/_generated and must type-check unchanged.
import { ConvexProvider, ConvexReactClient, useMutation, useQuery } from "convex/react";
import { api } from "../convex/_generated/api";
import type { Doc, Id } from "../convex/_generated/dataModel";

const convex = new ConvexReactClient("http://127.0.0.1:3210");

function TaskRow({ task }: { task: Doc<"tasks"> }) {
  const complete = useMutation(api.tasks.complete);
  const attachmentUrl = useQuery(api.tasks.attachment_url, { id: task._id });
  const attachment: Id<"_storage"> | undefined = task.attachment;
  const created: number = task._creationTime;
  return (
    <li onClick={() => void complete({ id: task._id })}>
      {task.done ? "✓ " : ""}
      {task.title} {attachment !== undefined && attachmentUrl ? attachmentUrl : ""} {created}
    </li>
  );
}

function Tasks() {
  const tasks = useQuery(api.tasks.mine);
  const add = useMutation(api.tasks.add);
  const attach = useMutation(api.tasks.attach);
  const uploadUrl = useMutation(api.tasks.attachment_upload_url);
  const unread = useQuery(api.notifications.unread) ?? [];
  const markRead = useMutation(api.notifications.mark_read);

  async function addAndAttach(title: string, file: Blob) {
    const id: Id<"tasks"> = await add({ title });
    const url: string = await uploadUrl();
    const response = await fetch(url, { method: "POST", body: file });
    const { storageId } = (await response.json()) as { storageId: Id<"_storage"> };
    const nothing: null = await attach({ id, storageId });
    return nothing;
  }

  if (tasks === undefined) {
    return <p>Loading…</p>;
  }
  const titles: string[] = tasks.map((task) => task.title);
  return (
    <div>
      <ul>
        {tasks.map((task) => (
          <TaskRow key={task._id} task={task} />
        ))}
      </ul>
      <p>{titles.join(", ")}</p>
      {unread.map((note) => (
        <p key={note._id} onClick={() => void markRead({ id: note._id })}>
          {note.message} at {note.at.toFixed(0)}
        </p>
      ))}
      <button onClick={() => void addAndAttach("new task", new Blob(["hi"]))}>add</button>
    </div>
  );
}

export function App() {
  return (
    <ConvexProvider client={convex}>
      <Tasks />
    </ConvexProvider>
  );
}
