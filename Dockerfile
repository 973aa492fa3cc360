# weave-ts: the agent (`weave-ts`) and the CNI plugin (`weave-ts-cni`) in one image, for
# deploy/kubernetes/. Build: docker build -t weave-ts:0.1.0 .

# Build stage: compilers for the native TAP binding, every dependency, the TypeScript build.
FROM node:20-slim AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 make g++ \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /build
# npm ci runs the package's install script, which builds native/build/Release/weave_tap.node:
# it needs the script and the C source before the rest of the tree (so this layer caches on them only).
COPY package.json package-lock.json ./
COPY scripts/build-native.mjs scripts/
COPY native/binding.gyp native/tap.c native/
RUN npm ci
COPY . .
RUN npm run build \
 && test -f native/build/Release/weave_tap.node

# Runtime stage: production dependencies, the built addon and dist/src; no compilers.
FROM node:20-slim
# `ip` (bridge, veths, VXLAN, xfrm) is what the agent runs on the host.
RUN apt-get update \
 && apt-get install -y --no-install-recommends iproute2 \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /opt/weave-ts
ENV NODE_ENV=production
COPY package.json package-lock.json ./
COPY scripts/build-native.mjs scripts/
# The addon comes from the build stage: skip the install script's build here.
RUN WEAVE_SKIP_NATIVE=1 npm ci --omit=dev \
 && npm cache clean --force
COPY --from=build /build/native/build/Release/weave_tap.node native/build/Release/weave_tap.node
COPY --from=build /build/dist/src dist/src
# The package's bins on the PATH (as npm would link them): weave-ts and weave-ts-cni.
RUN chmod +x dist/src/cli/main.js dist/src/cni/main.js \
 && ln -s /opt/weave-ts/dist/src/cli/main.js /usr/local/bin/weave-ts \
 && ln -s /opt/weave-ts/dist/src/cni/main.js /usr/local/bin/weave-ts-cni \
 && weave-ts version
ENTRYPOINT ["weave-ts"]
CMD ["--help"]
