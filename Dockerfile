# syntax=docker/dockerfile:1
# Parley: one image, one executable (`parley <all|gateway|chat|...>`).
# glibc (bookworm), not alpine: uWebSockets.js ships prebuilt glibc binaries.

FROM node:20-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY tsconfig.json tsconfig.client.json ./
COPY cmd ./cmd
COPY lib ./lib
COPY bench ./bench
COPY tests ./tests
COPY web ./web
RUN npm run build

FROM node:20-bookworm-slim AS runtime
ENV NODE_ENV=production
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund && npm cache clean --force
# Only what runs: the executable and the library. Tests and the bench stay out (the bench imports dev-only
# packages that this image leaves out; `parley bench` says so and runs from a source checkout).
COPY --from=build /app/dist/cmd ./dist/cmd
COPY --from=build /app/dist/lib ./dist/lib
# The demo page's bundle (served only with PARLEY_DEMO=1).
COPY --from=build /app/dist/web ./dist/web
USER node
EXPOSE 8080
# The gateway serves /healthz on PORT; a `chat`-only container has no HTTP listener (compose disables this check there).
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:'+(process.env.PORT||8080)+'/healthz').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"]
ENTRYPOINT ["node", "dist/cmd/parley.js"]
CMD ["all"]
